"""``batchgen pilot JOBFILE``: find the cheapest setting that is good enough, on a sample.

Takes a seeded sample of the job file (--sample 24 jobs, or a share: 10%; stratified over a
spec's variables), runs it under each setting (--try model=gpt-image-1-mini,gpt-image-1
quality=low,medium: every combination; default: a ladder from the cheap model at low quality
to the full model at high), scores every image (--judge MODEL or --scorer clip) and prints,
per setting: mean score (95% bootstrap interval), the share of images scoring at least --bar
(95% Wilson interval, and the one-sided lower bound at --confidence), cost per image,
expected cost per image that passes (cost ÷ pass rate), median latency, and the whole job
file projected. It names the cheapest setting (per passing image) whose pass rate is at
least --target at --confidence (Wilson lower bound), or says none is and which came closest.

The pilot is a run directory (its spend counts against --max-cost; `batchgen report` reads
it). Run the same command with --run-dir DIR again to resume a stopped pilot. --apply then
runs the whole job file with the chosen setting (or later: batchgen run JOBFILE --from-pilot
DIR), taking the pilot's images for the sampled jobs instead of paying twice.

Exit status: 0 done; 2 bad usage (nothing sent); 3 stopped early: run it again to resume.
"""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.cli.body import Body
from batchgen.cli.common import (
    JOB_DEFAULT_FLAGS,
    SESSION_FLAGS,
    add_job_defaults,
    add_session_arguments,
)
from batchgen.cli.score import SCORER_FLAGS, add_scorer_arguments

# the flags of applying a pilot or reusing a library, on `run` and `pilot` alike
APPLY_READS = frozenset({"setting", "regenerate_below", "max_rounds", "reuse", "reuse_bar"})
# the flags `pilot` reads (tests/test_cli_help.py: its parser offers exactly these)
READS = (
    frozenset(
        {
            "jobfile",
            "sample",
            "seed",
            "try_",
            "bar",
            "target",
            "confidence",
            "run_dir",
            "apply",
            "apply_run_dir",
        }
    )
    | APPLY_READS
    | SCORER_FLAGS
    | JOB_DEFAULT_FLAGS
    | SESSION_FLAGS
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pilot",
        help="try settings on a sample, pick the cheapest good enough (then --apply)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("jobfile", help="the job file (or YAML spec) to pilot")
    g = parser.add_argument_group("pilot")
    g.add_argument(
        "--sample",
        metavar="N|SHARE",
        help="jobs in the sample: a number (default 24) or a share (10%%, 0.1)",
    )
    g.add_argument("--seed", type=int, help="the sample's seed (default 0)")
    g.add_argument(
        "--try",
        dest="try_",
        nargs="+",
        metavar="FIELD=A,B",
        help="settings to try, every combination: --try model=gpt-image-1-mini,"
        "gpt-image-1 quality=low,medium (default: a ladder per provider)",
    )
    g.add_argument("--bar", type=float, help="an image passes at this score or above (default 7)")
    g.add_argument("--target", type=float, help="the pass rate a setting must reach (default 0.9)")
    g.add_argument(
        "--confidence",
        type=float,
        help="confidence of the pass rate's lower bound the choice reads "
        "(default 0.8: one-sided Wilson)",
    )
    g.add_argument(
        "--run-dir",
        help="the pilot's run directory (default runs/pilot-<stem>-<time>); "
        "an existing pilot there is resumed",
    )
    g.add_argument(
        "--apply", action="store_true", help="then run the whole job file with the chosen setting"
    )
    g.add_argument("--apply-run-dir", metavar="DIR", help="the --apply run's directory")
    add_apply_arguments(parser)

    add_scorer_arguments(parser, for_resume=True)
    add_job_defaults(parser)
    add_session_arguments(parser, resume=False)
    parser.set_defaults(func=Body("pilot", "cmd_pilot"))


def add_apply_arguments(parser: argparse.ArgumentParser, *, from_pilot: bool = False) -> None:
    g = parser.add_argument_group("applying a pilot, reuse")
    if from_pilot:
        g.add_argument(
            "--from-pilot",
            metavar="PILOT_DIR",
            help="run with the setting this pilot chose, reusing its images",
        )
    g.add_argument(
        "--setting",
        metavar="LABEL|ROW",
        help="with --from-pilot/--apply: this setting of the pilot's table instead of its choice",
    )
    g.add_argument(
        "--regenerate-below",
        type=float,
        metavar="S",
        help="then rerun jobs whose image scores below S",
    )
    g.add_argument(
        "--max-rounds",
        type=int,
        default=2,
        metavar="R",
        help="regeneration rounds at most (default 2)",
    )
    g.add_argument(
        "--reuse",
        nargs="?",
        const="",
        default=None,
        metavar="LIBRARY",
        help="reuse images made for the same request (library: default ~/.batchgen/library)",
    )
    g.add_argument(
        "--reuse-bar", type=float, metavar="S", help="with --reuse: only images scored at least S"
    )
