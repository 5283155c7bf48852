"""CLI glue for ``--via batch``: the flags, the lines printed when a batch session ends, and
the `collect` and `cancel` commands. The session is the library's (batchgen.session.batchmode),
the work batchgen/batch/'s; building the parser imports nothing heavy (tests/test_startup.py)."""

from __future__ import annotations

import argparse
import re
from typing import Any

from batchgen.cli.body import Body
from batchgen.cli.common import (
    SESSION_FLAGS,
    add_session_arguments,
)
from batchgen.config import BATCH_DEFAULTS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    m = _DURATION.match(text)
    if not m or float(m[1]) <= 0:
        msg = f"expected a duration like 90s, 30m, 6h or 1d, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return float(m[1]) * _UNIT[m[2]]


def add_batch_arguments(parser: argparse.ArgumentParser, *, resume: bool) -> None:
    group = parser.add_argument_group("Batch API (--via batch: half price, done within 24 h)")
    group.add_argument(
        "--via",
        choices=("live", "batch"),
        default=None,
        help="live: request by request (default); batch: through the provider's Batch API"
        + (" (default: what the run used)" if resume else ""),
    )
    group.add_argument(
        "--detach",
        action="store_true",
        help="submit the batches and exit; `batchgen collect RUN_DIR` later",
    )
    group.add_argument(
        "--deadline",
        type=duration,
        default=None,
        metavar="DURATION",
        help="e.g. 6h: what the batches cannot finish in time goes to the live "
        "API (counted from now)",
    )
    _add_batch_tuning(group)


def add_poll_arguments(group: Any) -> None:
    d = BATCH_DEFAULTS
    group.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        metavar="S",
        help="first poll of the batches after S seconds, doubling while "
        f"nothing changes (default {d['poll_interval']:g})",
    )
    group.add_argument(
        "--poll-max",
        type=float,
        default=None,
        metavar="S",
        help=f"longest wait between polls (default {d['poll_max']:g})",
    )


def _add_batch_tuning(group: Any) -> None:
    d = BATCH_DEFAULTS
    add_poll_arguments(group)
    group.add_argument(
        "--batch-max-requests",
        type=int,
        default=None,
        metavar="N",
        help=f"requests per input file (default {d['batch_max_requests']}, the provider's limit)",
    )
    group.add_argument(
        "--batch-max-bytes",
        type=int,
        default=None,
        metavar="BYTES",
        help=f"bytes per input file (default {d['batch_max_bytes'] // 2**20} MB, the "
        "provider's limit)",
    )
    group.add_argument(
        "--assume-latency",
        type=float,
        default=None,
        metavar="S",
        help="seconds a live request takes, for the deadline's estimate (default: "
        "the model's typical latency)",
    )


# ---- collect / cancel --------------------------------------------------------------------
# `collect` submits nothing and sends no image request: of the session's flags it reads where
# the batches are, how long a request may take, the output and the prices of what it collects,
# and the command a budget alert runs (the collected spend can pass 50 / 80 / 100 %)
COLLECT_READS = frozenset(
    {
        "run_dir",
        "provider",
        "base_url",
        "api_key_env",
        "providers",
        "timeout",
        "grace",
        "quiet",
        "image_checks",
        "prices",
        "price_per_image",
        "poll_interval",
        "poll_max",
        "on_budget",
    }
)
CANCEL_READS = frozenset({"run_dir", "base_url", "api_key_env"})


def register(subparsers: Any) -> None:
    collect = subparsers.add_parser(
        "collect",
        help="follow and collect a run's submitted batches (--via batch)",
        usage="%(prog)s RUN_DIR [options]",
        description="Re-attach to the batches a run submitted (after --detach, Ctrl-C or a "
        "crash): wait for them, save their images, log one row per line. Submits nothing.",
    )
    collect.add_argument("run_dir", help="the run directory (holds run.json)")
    add_session_arguments(collect, resume=True, leave_out=SESSION_FLAGS - COLLECT_READS, sim=False)
    add_poll_arguments(collect.add_argument_group("Batch API"))
    collect.set_defaults(func=Body("batch", "cmd_collect"))
    cancel = subparsers.add_parser(
        "cancel",
        help="cancel a run's open batches (--via batch)",
        description="Ask the provider to cancel every batch of the run that is still running. "
        "What finished before the cancel is billed and is collected by `collect`/`resume`; "
        "the rest stays pending.",
    )
    cancel.add_argument("run_dir", help="the run directory (holds run.json)")
    cancel.add_argument(
        "--base-url",
        default=None,
        help="the Batch API's base URL (default: the one the run used)",
    )
    cancel.add_argument(
        "--api-key-env",
        default=None,
        metavar="NAME",
        help="environment variable holding the API key (default: the one the run used)",
    )
    cancel.set_defaults(func=Body("batch", "cmd_cancel"))
