"""A plan of a job file: its problems, its quote (live, and the Batch API's when asked) and
what it adds for specs and edits, without sending anything (what ``batchgen plan`` prints)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.jobs.tally import PlanTally, too_many_jobs
from batchgen.money.batchrate import batch_table
from batchgen.money.precheck import FileCheck, check_file
from batchgen.money.table import PriceTable


@dataclass(slots=True)
class Plan:
    path: str
    check: FileCheck | None = None  # None when refused before the file was read
    tally: PlanTally = field(default_factory=PlanTally)  # cleared when the shape is wrong
    refused: str | None = None  # why it was not planned (--max-jobs)

    @property
    def ok(self) -> bool:
        """Every job would be accepted, and there is a quote."""
        c = self.check
        return (
            self.refused is None and c is not None and not c.problem_count and c.quote is not None
        )


def plan_file(
    path: str | Path,
    prices: PriceTable,
    defaults: Mapping[str, Any] | None = None,
    *,
    max_jobs: int | None = None,
    max_problems: int = 20,
    assume_latency: float | None = None,
    rpm: float | None = None,
    ipm: float | None = None,
    concurrency: int | None = None,
    via: str = "live",
) -> Plan:
    """Check and quote ``path`` in one pass. ``max_jobs`` refuses a bigger file (a spec is
    counted before it is expanded); ``via="batch"`` also quotes the Batch API. Raises
    ValueError for bad defaults."""
    if refused := too_many_jobs(path, max_jobs):
        return Plan(str(path), refused=refused[0])
    batch_prices = None
    if via == "batch":
        batch_prices = batch_table(prices)
    tally = PlanTally()
    check = check_file(
        path,
        defaults,
        prices,
        max_problems=max_problems,
        on_job=tally.add,
        assume_latency=assume_latency,
        rpm=rpm,
        ipm=ipm,
        concurrency=concurrency,
        batch_prices=batch_prices,
    )
    if check.quote is None:
        tally.clear()
    plan = Plan(str(path), check, tally)
    if max_jobs is not None and check.validation.jobs > max_jobs:
        plan.refused = f"{path}: {check.validation.jobs:,} jobs, more than --max-jobs {max_jobs:,}"
    return plan
