"""The hard budget in the pool: a reservation of the worst case before every attempt.

A job that does not fit while other attempts hold reservations waits for them to settle
(they usually cost less than their worst case). When nothing is held and it still does not
fit, it is not sent (recorded as class ``budget``, so it stays pending) and the pool goes on
with the next jobs, which may be cheaper; once even the cheapest job of the batch cannot fit,
dispatching stops.
"""

from __future__ import annotations

import anyio

from batchgen.errors import ErrorClass
from batchgen.jobs.model import Job
from batchgen.limits.stop import RunControl
from batchgen.money import Budget, Reservation


class BudgetGate:
    def __init__(self, budget: Budget, control: RunControl, cheapest_job_usd: float = 0.0) -> None:
        self.budget = budget
        self.control = control
        self.cheapest_job_usd = cheapest_job_usd
        self._changed = anyio.Event()

    async def reserve(self, job: Job) -> Reservation | None:
        """A reservation for one attempt of ``job``, or None: do not send it."""
        while True:
            if self.control.stopping:
                return None
            reservation = self.budget.reserve(job)
            if reservation is not None:
                return reservation
            if self.budget.reserved <= 0:
                remaining = self.budget.remaining or 0.0
                if remaining < self.cheapest_job_usd:
                    self.control.stop(ErrorClass.BUDGET, self.budget.exhausted_message())
                return None
            with self.control.interruptible():
                await self._changed.wait()

    def settle(self, reservation: Reservation, actual_usd: float) -> None:
        reservation.settle(actual_usd)
        if self.budget.monthly is not None:
            self.budget.monthly.check_alerts()  # 50 / 80 / 100 % of a monthly budget
        self._changed.set()
        self._changed = anyio.Event()
