"""Before anything is sent: the CLI's side of the checks (the flags, the quote on the
terminal and the confirmation). Validation, quoting and the budget are the library's
(``batchgen.session.prepare``); their names stay importable from here."""

from __future__ import annotations

import argparse

from rich.console import Console

from batchgen.cli.money_args import confirm
from batchgen.cli.plan import default_model_note
from batchgen.session.prepare import (
    MAX_PROBLEMS,
    Checked,
    JobFileProblems,
    check_job_file,
)

__all__ = [
    "MAX_PROBLEMS",
    "Checked",
    "JobFileProblems",
    "check_job_file",
    "show_quote_and_confirm",
]


def show_quote_and_confirm(
    console: Console, args: argparse.Namespace, checked: Checked, quiet: bool
) -> bool:
    if not quiet:
        # lazy: the quote's table (rich.table, which loads fractions and decimal: ~20 ms of
        # a run's start) is drawn only without --quiet
        from batchgen.cli.quote import quote_renderable

        console.print(quote_renderable(checked.quote))
        if not getattr(args, "model", None) and getattr(args, "command", None) == "run":
            console.print(default_model_note(), markup=False)
    for warning in checked.warnings:  # a field the API does not know, once per field
        console.print(f"warning: {warning}", markup=False, style="yellow")
    batch = getattr(args, "via", None) == "batch"
    for model in checked.quote.unknown_models:
        what = "no Batch API price" if batch else "no price"
        console.print(
            f"[yellow]warning: {what} for model {model!r}: its cost is logged as unknown "
            "(add it with --prices FILE or --price-per-image USD)[/]"
        )
    return confirm(checked.quote, args)
