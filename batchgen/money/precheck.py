"""One streamed pass over a job file before anything is sent: its shape (the job reader), each
job against its model's constraints (the price table), and the quote.

Used by ``batchgen plan`` (which prints what it finds) and by ``run``/``resume`` (which refuse
a file with problems); a Python caller gets the same ``FileCheck``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.jobs import Job, Problem, validate_file
from batchgen.jobs.validate import Validation
from batchgen.money.constraints import check_job
from batchgen.money.cost import worst_case_usd
from batchgen.money.quote import Quote, Quoter
from batchgen.money.table import PriceTable


@dataclass(slots=True)
class FileCheck:
    """What the pass found. Shape problems (from the reader) win: when there are any, the
    model problems and the quotes gathered alongside are dropped, as if the file had stopped
    at validation."""

    validation: Validation
    model_problems: list[Problem] = field(default_factory=list)  # at most max_problems
    model_problem_count: int = 0  # all found, shown or not
    quote: Quote | None = None  # None when the shape is wrong
    batch_quote: Quote | None = None  # the Batch API's price, when asked
    cheapest_job_usd: float = 0.0  # the smallest worst case among the jobs quoted

    @property
    def problem_count(self) -> int:
        return self.validation.problem_count + self.model_problem_count


def check_file(
    path: str | Path,
    defaults: Mapping[str, Any] | None,
    prices: PriceTable,
    *,
    max_problems: int = 20,
    only: Collection[str] | None = None,
    on_job: Callable[[Job], None] | None = None,
    assume_latency: float | Callable[[Job], float] | None = None,
    rpm: float | None = None,
    ipm: float | None = None,
    concurrency: int | None = None,
    batch_prices: PriceTable | None = None,
) -> FileCheck:
    """Validate shape, model constraints and the quote in one streamed pass over the file.

    ``only``: quote just these job ids (resume), while every line is still validated.
    ``on_job``: sees every job first (to index or tally it in the same pass).
    ``batch_prices``: also quote the file at these (Batch API) prices.
    Raises ValueError for bad defaults (and OSError when the file cannot be read)."""
    problems: list[Problem] = []
    counted = [0]
    cheapest = [math.inf]
    quoter = Quoter(prices, assume_latency=assume_latency)
    batch_quoter = (
        Quoter(batch_prices, assume_latency=assume_latency) if batch_prices is not None else None
    )
    where = str(path)

    def visit(job: Job) -> None:
        if on_job is not None:
            on_job(job)
        for message in check_job(prices, job):
            counted[0] += 1
            if len(problems) < max_problems:
                problems.append(Problem(where, job.line, message))
        if only is None or job.id in only:
            cheapest[0] = min(cheapest[0], worst_case_usd(prices, job) or 0.0)
            quoter.add(job)
            if batch_quoter is not None:
                batch_quoter.add(job)

    validation = validate_file(path, defaults, max_errors=max_problems, on_job=visit)
    if not validation.ok:
        return FileCheck(validation)
    return FileCheck(
        validation,
        problems,
        counted[0],
        quoter.result(rpm=rpm, ipm=ipm, concurrency=concurrency),
        batch_quoter.result() if batch_quoter is not None else None,
        0.0 if math.isinf(cheapest[0]) else cheapest[0],
    )
