"""``batchgen gen "a prompt"``: one image, through the same machinery as a run (the price check,
the limits, retries, the crash-safe log, a run directory `resume` and `report` understand).
Prints where the image was saved; ``-o FILE`` copies it there too.

Exit status: 0 saved; 1 the provider refused it (content policy, bad request); 2 bad usage
(nothing was sent); 3 stopped (auth, quota, budget, interrupt): `batchgen resume RUN_DIR`.
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

DEFAULT_MODEL = "gpt-image-1-mini"
# one request: no rate or concurrency to tune, no image checks to run in the background
READS = (
    frozenset({"prompt", "output", "run_dir"})
    | JOB_DEFAULT_FLAGS
    | (
        SESSION_FLAGS
        - {"concurrency", "rpm", "ipm", "adaptive", "stall_timeout", "max_pause", "image_checks"}
    )
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gen",
        help="generate one image from a prompt (a one-job run)",
        description=__doc__,
        usage='%(prog)s "PROMPT" [-o FILE] [options]',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompt", help="what the image should show")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="also copy the image here (with --n 2 or more: FILE_1.png, FILE_2.png ...)",
    )
    parser.add_argument(
        "--run-dir", help="where the image, log and run.json go (default runs/gen-<UTC time>)"
    )
    add_job_defaults(parser, model=DEFAULT_MODEL)
    add_session_arguments(parser, resume=False, leave_out=SESSION_FLAGS - READS)
    parser.set_defaults(func=Body("gen", "cmd_gen"))


__all__ = ["READS", "register"]
