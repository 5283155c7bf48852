"""Before anything is sent: validate the job file, check each job against its model, quote it,
load the price table and set up the budget. Used by run, resume and the Batch API mode (and
by ``batchgen plan`` through ``cli/prepare.py``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.errors import UsageError
from batchgen.jobs import Job, JobFileError, Problem, validate_file
from batchgen.money import (
    Budget,
    BudgetError,
    PriceTable,
    Quote,
    check_job,
    worst_case_usd,
)
from batchgen.money import (
    load_prices as load_price_table,
)
from batchgen.money.quote import Quoter

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


def load_prices(prices: str | Path | None, price_per_image: float | None) -> PriceTable:
    """The validated price table (``prices``: a TOML file replacing the built-in one)."""
    return load_price_table(prices, fallback_per_image=price_per_image)  # PricesError


def check_job_file(
    path: str | Path,
    defaults: dict[str, Any],
    prices: PriceTable,
    *,
    only: frozenset[str] | None = None,
    rpm: float | None = None,
    ipm: float | None = None,
    concurrency: int | None = None,
    index: IndexBuilder | None = None,
) -> Checked:
    """Validate shape, model constraints and the quote in one streamed pass over the file.

    ``only``: quote just these job ids (resume), while every line is still validated.
    ``index``: also collect every job's (id, fingerprint, line) there, for resume.

    Shape problems (from the reader) win: when there are any, the model problems and the
    quote gathered alongside are dropped, as if the file had stopped at validation."""
    problems: list[Problem] = []
    counted = [0]
    cheapest = [math.inf]
    quoter = Quoter(prices)
    add_to_quote = quoter.add
    where = str(path)

    def visit(job: Job) -> None:
        if index is not None:
            index.add(job.id, job.fingerprint, job.line)
        for message in check_job(prices, job):
            counted[0] += 1
            if len(problems) < MAX_PROBLEMS:
                problems.append(Problem(where, job.line, message))
        if only is None or job.id in only:
            cheapest[0] = min(cheapest[0], worst_case_usd(prices, job) or 0.0)
            add_to_quote(job)

    try:
        validation = validate_file(path, defaults, max_errors=MAX_PROBLEMS, on_job=visit)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from exc
    if not validation.ok:
        lines = [str(p) for p in validation.problems]
        if validation.problem_count > len(lines):
            lines.append(f"... and {validation.problem_count - len(lines)} more problems")
        raise JobFileProblems(lines)
    if counted[0]:
        lines = [str(p) for p in problems]
        if counted[0] > len(lines):
            lines.append(f"... and {counted[0] - len(lines)} more problems")
        lines.append("check the model's sizes, qualities and n (`batchgen plan` shows the quote)")
        raise JobFileProblems(lines)
    result = quoter.result(rpm=rpm, ipm=ipm, concurrency=concurrency)
    floor = 0.0 if math.isinf(cheapest[0]) else cheapest[0]
    return Checked(validation.jobs, validation.images, validation.sha256, result, floor)


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
