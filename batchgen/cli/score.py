"""``batchgen score RUN_DIR``: score every saved image against its prompt.

--judge MODEL asks a vision chat model (OpenAI-compatible chat completions, the image sent as
a data URL) for a 1-10 score, the defects it sees and one line of reasons, with a rubric
(--rubric FILE replaces the default). --scorer clip scores prompt-image alignment locally with
a CLIP model (pip install 'batchgen[clip]'). Verdicts go to RUN_DIR/scores/ (Parquet), one
durable row per image as it arrives: a killed `score` run again judges only the rest.

Exit status: 0 every image scored; 1 some could not be scored; 2 bad usage; 3 stopped early
(budget, auth, quota, interrupt): run `batchgen score` again.
"""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.cli.body import Body
from batchgen.cli.common import (
    SESSION_FLAGS,
    add_session_arguments,
)

SCORER_FLAGS = frozenset({"judge", "scorer", "clip_model", "rubric", "detail"})
# what a scoring session does not read: it starts no image requests (no --ipm, no image
# checks), talks to one judge (no --providers) and asks nothing before it starts
_NOT_READ = frozenset({"providers", "ipm", "image_checks", "confirm_above", "yes"})
# the flags `score` reads (tests/test_cli_help.py: its parser offers exactly these)
READS = frozenset({"run_dir", "threshold", "rescore"}) | SCORER_FLAGS | (SESSION_FLAGS - _NOT_READ)


def add_scorer_arguments(parser: argparse.ArgumentParser, *, for_resume: bool = False) -> None:
    group = parser.add_argument_group("scoring")
    group.add_argument(
        "--judge",
        metavar="MODEL",
        help="a vision chat model as the judge, e.g. gpt-4o-mini",
    )
    group.add_argument(
        "--scorer",
        choices=("judge", "clip"),
        metavar="KIND",
        help="judge (--judge MODEL) or clip (local, batchgen[clip])",
    )
    group.add_argument(
        "--clip-model",
        metavar="NAME",
        help="CLIP model, a Hugging Face name or a folder (default openai/clip-vit-base-patch32)",
    )
    group.add_argument(
        "--rubric", metavar="FILE", help="a text file replacing the judge's default rubric"
    )
    group.add_argument(
        "--detail",
        choices=("low", "high", "auto"),
        metavar="LEVEL",
        help="the image detail sent to the judge: low (default), high, auto",
    )
    if not for_resume:
        group.add_argument(
            "--threshold",
            type=float,
            default=None,
            metavar="S",
            help="images scoring below this are flagged (default 6)",
        )
        group.add_argument(
            "--rescore", action="store_true", help="score again images this scorer already scored"
        )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score every saved image against its prompt (a judge model or CLIP)",
        description=__doc__,
        usage="%(prog)s RUN_DIR (--judge MODEL | --scorer clip) [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", help="the run directory (holds run.json)")
    add_scorer_arguments(parser)
    add_session_arguments(parser, resume=True, leave_out=_NOT_READ)
    parser.set_defaults(func=Body("score", "cmd_score"))
