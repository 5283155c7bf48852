"""Before anything is sent: validate the job file, check each job against its model, quote it,
and set up the budget. Shared by `run` and `resume` (which re-checks an edited job file)."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from batchgen.cli.common import UsageError
from batchgen.cli.money_args import confirm, prices_from_args
from batchgen.cli.quote import quote_renderable
from batchgen.jobs import Problem
from batchgen.money import Budget, BudgetError, PricesError, PriceTable, Quote
from batchgen.money.precheck import check_file

if TYPE_CHECKING:
    from batchgen.runlog.jobindex import IndexBuilder

MAX_PROBLEMS = 20


class JobFileProblems(Exception):
    """The job file has problems: printed as FILE:LINE lines, exit 2, nothing sent."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass(frozen=True, slots=True)
class Checked:
    jobs: int
    images: int
    sha256: str
    quote: Quote
    cheapest_job_usd: float  # the smallest worst case among the jobs quoted (0 if unpriced)


def load_prices(args: argparse.Namespace) -> PriceTable:
    try:
        return prices_from_args(args)
    except PricesError as exc:
        raise UsageError(str(exc)) from exc


def check_job_file(
    path: str | Path,
    defaults: dict[str, Any],
    prices: PriceTable,
    *,
    only: Collection[str] | None = None,
    rpm: float | None = None,
    ipm: float | None = None,
    concurrency: int | None = None,
    index: IndexBuilder | None = None,
) -> Checked:
    """Validate shape, model constraints and the quote in one streamed pass over the file
    (batchgen.money.precheck); any problem raises JobFileProblems, a file that cannot be read
    or bad defaults UsageError.

    ``only``: quote just these job ids (resume), while every line is still validated.
    ``index``: also collect every job's (id, fingerprint, line) there, for resume."""
    on_job = None if index is None else (lambda job: index.add(job.id, job.fingerprint, job.line))
    try:
        check = check_file(
            path, defaults, prices, max_problems=MAX_PROBLEMS, only=only, on_job=on_job,
            rpm=rpm, ipm=ipm, concurrency=concurrency,
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from exc
    validation = check.validation
    if not validation.ok:
        raise JobFileProblems(_problem_lines(validation.problems, validation.problem_count))
    if check.model_problem_count:
        lines = _problem_lines(check.model_problems, check.model_problem_count)
        lines.append("check the model's sizes, qualities and n (`batchgen plan` shows the quote)")
        raise JobFileProblems(lines)
    assert check.quote is not None
    return Checked(
        validation.jobs, validation.images, validation.sha256, check.quote, check.cheapest_job_usd
    )


def _problem_lines(shown: list[Problem], count: int) -> list[str]:
    lines = [str(p) for p in shown]
    if count > len(lines):
        lines.append(f"... and {count - len(lines)} more problems")
    return lines


def make_budget(
    args: argparse.Namespace, prices: PriceTable, checked: Checked, spent_before: float = 0.0
) -> Budget:
    try:
        budget = Budget(
            getattr(args, "max_cost", None),
            spent_before,
            prices,
            getattr(args, "price_per_image", None),
        )
        budget.require_priced(checked.quote.unknown_models)
    except BudgetError as exc:
        raise UsageError(str(exc)) from exc
    return budget


def show_quote_and_confirm(
    console: Console, args: argparse.Namespace, checked: Checked, quiet: bool
) -> bool:
    if not quiet:
        console.print(quote_renderable(checked.quote))
    for model in checked.quote.unknown_models:
        console.print(
            f"[yellow]warning: no price for model {model!r}: its cost is logged as unknown "
            "(add it with --prices FILE or --price-per-image USD)[/]"
        )
    return confirm(checked.quote, args)
