"""The money flags shared by ``plan``, ``run`` and ``resume``, and what they turn into."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any, TextIO

from batchgen.money.load import load_prices
from batchgen.money.quote import Quote
from batchgen.money.table import PriceTable


def _amount(text: str) -> float:
    """An amount of USD as a number; RunConfig checks its range (once, for the flags and
    the API's keyword arguments alike)."""
    try:
        return float(text)
    except ValueError:
        msg = f"expected an amount of USD (e.g. 12.50), got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _usd(text: str) -> float:
    """--confirm-above: the CLI's own (no run setting), checked here."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        msg = f"expected an amount of USD ≥ 0 (e.g. 12.50), got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


class SkippingGroup:
    """An argument group that leaves out the flags a command does not read (by dest)."""

    def __init__(self, group: Any, leave_out: frozenset[str]) -> None:
        self.group, self.leave_out = group, leave_out

    def add_argument(self, *names: str, **kwargs: Any) -> None:
        dest = kwargs.get("dest") or names[0].lstrip("-").replace("-", "_")
        if dest not in self.leave_out:
            self.group.add_argument(*names, **kwargs)


def add_ledger_arguments(
    parser: argparse.ArgumentParser, *, leave_out: frozenset[str] = frozenset()
) -> None:
    """--ledger, --project, --monthly-budget, --project-budget, --on-budget (but ``leave_out``)."""
    group = SkippingGroup(
        parser.add_argument_group("money across runs (the spend ledger)"), leave_out
    )
    group.add_argument(
        "--ledger",
        metavar="PATH",
        help="the SQLite spend ledger shared by every run (default $BATCHGEN_LEDGER, else "
        "config.toml's ledger, else the user data directory; 'off': none)",
    )
    group.add_argument(
        "--project",
        metavar="NAME",
        help="the project this run's spend counts for (default the job file's folder name)",
    )
    group.add_argument(
        "--monthly-budget",
        metavar="USD",
        type=_amount,
        help="this month's spend over every run sharing the ledger never passes USD: a "
        "request is sent only if its worst case still fits (config.toml: monthly_budget)",
    )
    group.add_argument(
        "--project-budget",
        metavar="USD",
        type=_amount,
        help="the same for this run's project (config.toml: [projects.NAME] monthly_budget)",
    )
    group.add_argument(
        "--on-budget",
        metavar="CMD",
        help="a shell command run at 50, 80 and 100 %% of a budget, the event in "
        "BATCHGEN_BUDGET_* environment variables",
    )


def add_money_arguments(
    parser: argparse.ArgumentParser, *, leave_out: frozenset[str] = frozenset()
) -> None:
    """--prices, --max-cost, --price-per-image, --confirm-above, --yes (but ``leave_out``)."""
    group = parser.add_argument_group("cost")
    for args, kwargs in _MONEY_FLAGS:
        dest = args[0].lstrip("-").replace("-", "_")
        if dest not in leave_out:
            group.add_argument(*args, **kwargs)


_MONEY_FLAGS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--prices",), {"metavar": "FILE", "help": "a TOML price table merged over the shipped "
                     "one (add models, change prices)"}),
    (("--max-cost",), {"metavar": "USD", "type": _amount, "help": "hard budget: a job is not "
                       "sent if its worst-case cost would pass this total"}),
    (("--price-per-image",), {"metavar": "USD", "type": _amount, "help": "price of one image for "
                              "models missing from the price table"}),
    (("--confirm-above",), {"metavar": "USD", "type": _usd, "help": "ask before starting when "
                            "the quote's high estimate is above this"}),
    (("--yes",), {"action": "store_true", "help": "do not ask, start at once"}),
]  # fmt: skip


def prices_from_args(args: argparse.Namespace) -> PriceTable:
    """The validated table the flags describe (raises PricesError with the fix)."""
    return load_prices(
        getattr(args, "prices", None), fallback_per_image=getattr(args, "price_per_image", None)
    )


def needs_confirmation(quote: Quote, confirm_above: float | None) -> bool:
    """Ask when the worst of the quote's range passes --confirm-above, or a cost is unknown."""
    if confirm_above is None:
        return False
    return quote.high_usd > confirm_above or not quote.complete


def confirm(
    quote: Quote,
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> bool:
    """True to go ahead: --yes, no threshold passed, or the user typed y. A non-interactive
    input refuses (a script must say --yes), so nothing is spent by accident."""
    if getattr(args, "yes", False) or not needs_confirmation(quote, args.confirm_above):
        return True
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if not stdin.isatty():
        stdout.write(
            f"The quote (up to ${quote.high_usd:,.2f}) is above --confirm-above "
            f"${args.confirm_above:,.2f} and there is no terminal to ask: pass --yes to start.\n"
        )
        return False
    stdout.write(f"This batch may cost up to ${quote.high_usd:,.2f}. Start it? [y/N] ")
    stdout.flush()
    return stdin.readline().strip().lower() in {"y", "yes"}
