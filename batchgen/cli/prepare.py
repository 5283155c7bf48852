"""Before anything is sent: the CLI's side of the checks (the flags, the quote on the
terminal and the confirmation). Validation, quoting and the budget are the library's
(``batchgen.session.prepare``); their names stay importable from here."""

from __future__ import annotations

import argparse

from rich.console import Console

from batchgen.cli.money_args import confirm
from batchgen.cli.quote import quote_renderable
from batchgen.money import Budget, PriceTable
from batchgen.session.prepare import (
    MAX_PROBLEMS,
    Checked,
    JobFileProblems,
    check_job_file,
)
from batchgen.session.prepare import load_prices as _load_prices
from batchgen.session.prepare import make_budget as _make_budget

__all__ = [
    "MAX_PROBLEMS",
    "Checked",
    "JobFileProblems",
    "check_job_file",
    "load_prices",
    "make_budget",
    "show_quote_and_confirm",
]


def load_prices(args: argparse.Namespace) -> PriceTable:
    return _load_prices(getattr(args, "prices", None), getattr(args, "price_per_image", None))


def make_budget(
    args: argparse.Namespace, prices: PriceTable, checked: Checked, spent_before: float = 0.0
) -> Budget:
    max_cost = getattr(args, "max_cost", None)
    per_image = getattr(args, "price_per_image", None)
    return _make_budget(max_cost, per_image, prices, checked, spent_before)


def show_quote_and_confirm(
    console: Console, args: argparse.Namespace, checked: Checked, quiet: bool
) -> bool:
    if not quiet:
        console.print(quote_renderable(checked.quote))
        if not getattr(args, "model", None) and getattr(args, "command", None) == "run":
            from batchgen.cli.plan import default_model_note

            console.print(default_model_note(), markup=False)
    batch = getattr(args, "via", None) == "batch"
    for model in checked.quote.unknown_models:
        what = "no Batch API price" if batch else "no price"
        console.print(
            f"[yellow]warning: {what} for model {model!r}: its cost is logged as unknown "
            "(add it with --prices FILE or --price-per-image USD)[/]"
        )
    return confirm(checked.quote, args)
