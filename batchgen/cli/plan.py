"""``batchgen plan JOBFILE``: check a job file and quote it, without sending anything.

Exit status: 0 when every job would be accepted, 2 when any problem was found (shape problems
from the job reader, or model constraints from the price table) or the inputs are unusable.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from batchgen.cli.body import Body
from batchgen.cli.common import LIMIT_FLAGS, add_job_defaults, add_limit_arguments
from batchgen.cli.money_args import add_money_arguments
from batchgen.config import DEFAULT_MODEL

if TYPE_CHECKING:
    pass

EXIT_OK = 0
EXIT_PROBLEMS = 2
_DEFAULTS = ("model", "size", "quality", "n")  # job defaults from the flags
_LIMITS = frozenset({"rpm", "ipm", "concurrency"})  # run's limit flags a plan reads
# the flags `plan` reads (tests/test_cli_help.py: its parser offers exactly these); it asks
# nothing before a start, so no --confirm-above / --yes
READS = frozenset(
    {
        "jobfile",
        *_DEFAULTS,
        *_LIMITS,
        "max_jobs",
        "prices",
        "max_cost",
        "price_per_image",
        "assume_latency",
        "via",
        "output_format",
        "max_problems",
    }
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="check a job file and estimate its cost and duration (sends nothing)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "jobfile",
        help="JSONL, OpenAI batch JSONL, CSV, plain text job file or YAML spec; - reads it "
        "from stdin",
    )
    add_shared_arguments(parser)
    parser.add_argument(
        "--max-jobs",
        metavar="N",
        type=int,
        help="refuse (exit 2) a job file or spec of more than N jobs; a spec is counted "
        "before it is expanded",
    )
    add_money_arguments(parser, leave_out=frozenset({"confirm_above", "yes"}))
    _add_output_arguments(parser)
    parser.set_defaults(func=Body("plan", "cmd_plan"))


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--assume-latency",
        metavar="S",
        type=float,
        help="seconds one request takes, for the minimum wall time (default: the model's "
        "typical latency from the price table, 15 s for gpt-image)",
    )
    parser.add_argument(
        "--via",
        choices=("live", "batch"),
        help="batch: also quote the provider's Batch API (half price for OpenAI image models, "
        "done within 24 h) beside the live price",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        dest="output_format",
        help="text (default) or json: the same plan as one JSON object, for scripts",
    )
    parser.add_argument(
        "--max-problems",
        metavar="N",
        type=int,
        default=20,
        help="show at most N problems of each kind (all are counted)",
    )


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """`run`'s own flags for what a plan shares with a run: the job defaults and the limits
    the quote's wall time is estimated under (--rpm, --ipm, --concurrency), with run's
    defaults and checks (batchgen.config), so both quote alike."""

    add_job_defaults(parser)
    add_limit_arguments(parser, LIMIT_FLAGS - _LIMITS)


def default_model_note() -> str:
    return (
        f"Jobs that name no model are quoted (and run) as {DEFAULT_MODEL}, batchgen's default; "
        "--model picks another."
    )
