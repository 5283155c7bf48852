"""``batchgen spend``: what the runs sharing the ledger spent this month (or since a date),
by day, model, project or endpoint, and what the monthly budget has left.
``batchgen ledger rebuild DIR...``: the ledger's rows of those runs made from their logs.

Exit status: 0 shown; 2 bad usage (a bad date, no ledger, a directory that is not a run).
"""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.cli.body import Body
from batchgen.cli.money_args import _usd

# the flags `spend` and `ledger` read (tests/test_cli_help.py: their parsers offer exactly these)
READS = frozenset({"since", "by", "project", "format", "ledger", "monthly_budget"})
LEDGER_READS = frozenset({"ledger_command", "run_dirs", "ledger"})


def register(subparsers: Any) -> None:
    spend = subparsers.add_parser(
        "spend",
        help="this month's spend across runs (the ledger)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    spend.add_argument(
        "--since",
        metavar="DATE",
        help="from this UTC date (YYYY-MM-DD, or YYYY-MM-DDTHH:MM) instead of the month's start",
    )
    spend.add_argument(
        "--by",
        choices=("day", "model", "project", "endpoint", "provider", "run"),
        help="one line per day, model, project, endpoint, provider or run",
    )
    spend.add_argument("--project", metavar="NAME", help="only this project's spend")
    spend.add_argument(
        "--format", choices=("text", "json"), default="text", help="text (default) or json"
    )
    spend.add_argument("--ledger", metavar="PATH", help="the ledger file (as for run)")
    spend.add_argument(
        "--monthly-budget",
        metavar="USD",
        type=_usd,
        help="the budget to compare with (default config.toml's monthly_budget)",
    )
    spend.set_defaults(func=Body("spend", "cmd_spend"))
    ledger = subparsers.add_parser("ledger", help="the spend ledger: rebuild it from run logs")
    sub = ledger.add_subparsers(
        dest="ledger_command", metavar="COMMAND", required=True, help="rebuild"
    )
    rebuild = sub.add_parser(
        "rebuild", help="make the ledger's rows of these runs from their Parquet logs"
    )
    rebuild.add_argument("run_dirs", nargs="+", metavar="DIR", help="run directories")
    rebuild.add_argument("--ledger", metavar="PATH", help="the ledger file (as for run)")
    rebuild.set_defaults(func=Body("spend", "cmd_rebuild"))
