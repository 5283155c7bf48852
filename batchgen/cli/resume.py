"""``batchgen resume RUN_DIR``: finish exactly the rest of a run.

Runs every job without a successful result: never attempted, pending after a stop (auth,
quota, budget, interrupt), cancelled, in flight at a crash, or failed with a retryable class
after its attempts ran out. Jobs that failed for good (content policy, bad request) are rerun
only with --retry-failed. Images on disk whose log row never landed are adopted, not paid for
again. Settings come from run.json; flags given here override them for this session.
"""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.cli.batch import add_batch_arguments
from batchgen.cli.body import Body
from batchgen.cli.common import (
    BATCH_FLAGS,
    SESSION_FLAGS,
    STORAGE_FLAGS,
    add_ray_argument,
    add_session_arguments,
)
from batchgen.cli.notifyargs import NOTIFY_FLAGS, add_notify_arguments
from batchgen.cli.score import SCORER_FLAGS, add_scorer_arguments

# the flags `resume` reads (tests/test_cli_help.py: its parser offers exactly these)
READS = (
    frozenset({"run_dir", "retry_failed", "regenerate_below", "max_rounds", "ray"})
    | SCORER_FLAGS
    | NOTIFY_FLAGS
    | SESSION_FLAGS
    | STORAGE_FLAGS
    | BATCH_FLAGS
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "resume",
        help="finish an interrupted or partly failed run",
        description=__doc__,
        usage="%(prog)s RUN_DIR [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", help="the run directory (holds run.json)")
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="also rerun jobs that failed for good (content policy, bad request)",
    )
    add_ray_argument(parser, "run the rest over a Ray cluster, as run --ray does", "RUN_DIR")
    regen = parser.add_argument_group("quality loop")
    regen.add_argument(
        "--regenerate-below",
        type=float,
        metavar="S",
        help="rerun jobs whose best image scores below S (scored with the last `batchgen "
        "score`'s scorer, or --judge/--scorer given here); every image is kept",
    )
    regen.add_argument(
        "--max-rounds",
        type=int,
        default=2,
        metavar="R",
        help="regeneration rounds at most (default 2); --max-cost also stops them",
    )
    add_scorer_arguments(parser, for_resume=True)
    add_session_arguments(parser, resume=True, storage=True)
    add_notify_arguments(parser)

    add_batch_arguments(parser, resume=True)
    parser.set_defaults(func=Body("resume", "cmd_resume"))
