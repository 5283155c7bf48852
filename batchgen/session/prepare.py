"""Before anything is sent: validate the job file, check each job against its model, quote it,
load the price table and set up the budget. Used by run, resume and the Batch API mode (and
by ``batchgen plan`` through ``cli/prepare.py``)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.errors import UsageError
from batchgen.jobs import Job, JobFileError, Problem
from batchgen.money import (
    Budget,
    BudgetError,
    PriceTable,
    Quote,
)
from batchgen.money import (
    load_prices as load_price_table,
)
from batchgen.money.precheck import check_file

if TYPE_CHECKING:
    from batchgen.runlog.jobindex import IndexBuilder

MAX_PROBLEMS = 20


class JobFileProblems(JobFileError):
    """The job file has problems: ``lines`` are FILE:LINE messages; nothing was sent."""

    def __init__(self, lines: list[str]) -> None:
        UsageError.__init__(self, "\n".join(lines))
        self.problem = Problem("", 0, lines[0] if lines else "")
        self.lines = lines


@dataclass(frozen=True, slots=True)
class Checked:
    jobs: int
    images: int
    sha256: str
    quote: Quote
    cheapest_job_usd: float  # the smallest worst case among the jobs quoted (0 if unpriced)
    # FILE:LINE notes on fields the API does not know (sent as is), one per field
    warnings: tuple[str, ...] = ()


def load_prices(prices: str | Path | None, price_per_image: float | None) -> PriceTable:
    """The validated price table (``prices``: a TOML file replacing the built-in one)."""
    return load_price_table(prices, fallback_per_image=price_per_image)  # PricesError


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
    assume_latency: float | Callable[[Job], float] | None = None,
) -> Checked:
    """Validate shape, model constraints and the quote in one streamed pass over the file
    (batchgen.money.precheck); any problem raises JobFileProblems, a file that cannot be read
    or bad defaults UsageError.

    ``only``: quote just these job ids (resume), while every line is still validated.
    ``index``: also collect every job's (id, fingerprint, line) there, for resume."""
    on_job = None if index is None else index.add_job
    try:
        check = check_file(
            path,
            defaults,
            prices,
            max_problems=MAX_PROBLEMS,
            only=only,
            on_job=on_job,
            rpm=rpm,
            ipm=ipm,
            concurrency=concurrency,
            assume_latency=assume_latency,
        )
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
        validation.jobs,
        validation.images,
        validation.sha256,
        check.quote,
        check.cheapest_job_usd,
        tuple(str(w) for w in validation.warnings),
    )


def _problem_lines(shown: list[Problem], count: int) -> list[str]:
    lines = [str(p) for p in shown]
    if count > len(lines):
        lines.append(f"... and {count - len(lines)} more problems")
    return lines


def make_budget(
    max_cost: float | None,
    price_per_image: float | None,
    prices: PriceTable,
    checked: Checked,
    spent_before: float = 0.0,
) -> Budget:
    try:
        budget = Budget(max_cost, spent_before, prices, price_per_image)
        budget.require_priced(checked.quote.unknown_models)
    except BudgetError as exc:
        raise UsageError(str(exc)) from exc
    return budget
