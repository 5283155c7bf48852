"""The hard budget cap (``--max-cost``): a job is sent only if its worst case still fits.

Before sending, a worker reserves the job's worst-case cost (:func:`worst_case_usd`); after
the answer it settles the reservation with what was actually billed. Because a reservation is
never smaller than what it settles, ``spent + reserved`` never grows on settle, and reserve
refuses whatever would push it past the cap — so ``spent ≤ cap`` under any interleaving.

Amounts are kept as whole nano-dollars: float sums drift (0.1 + 0.2 > 0.3), and a cap must
not be passed by a rounding error. Reserving and settling never await, so on one event loop
each is atomic; a lock makes them safe from threads too.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterable

from batchgen.jobs.model import Job
from batchgen.money.cost import worst_case_usd
from batchgen.money.monthly import MonthlyBudget
from batchgen.money.table import PriceTable
from batchgen.numbers import plural

_NANO = 1_000_000_000


class BudgetError(Exception):
    """The budget cannot be enforced (e.g. a model has no price and no --price-per-image)."""


def _to_nano_up(usd: float) -> int:
    return math.ceil(usd * _NANO - 1e-6)


def _to_nano(usd: float) -> int:
    return round(usd * _NANO)


class Reservation:
    """Money held for one job until it is settled (once)."""

    __slots__ = ("_budget", "amount_nano", "hold_id", "job_id", "model", "owner", "settled")

    def __init__(
        self,
        budget: Budget,
        job_id: str,
        model: str | None,
        amount_nano: int,
        hold_id: int | None = None,
        owner: str | None = None,
    ) -> None:
        self._budget = budget
        self.job_id = job_id
        self.model = model
        self.amount_nano = amount_nano
        self.hold_id = hold_id  # the monthly budget's hold in the shared ledger
        self.owner = owner  # or the holds of a batch part, released together
        self.settled = False

    @property
    def amount_usd(self) -> float:
        return self.amount_nano / _NANO

    def settle(self, actual_usd: float | None) -> None:
        """Release the reservation and add what was billed. ``None`` (cost unknown) is charged
        as the full reservation, the only figure known to be high enough."""
        self._budget._settle(self, actual_usd)

    def release(self) -> None:
        """The job was not sent (or failed before billing): nothing is charged."""
        self.settle(0.0)

    def park(self) -> None:
        """This process ends before the batch is collected: its holds in the ledger stay
        until a later collection settles them (no pid of theirs is checked)."""
        monthly = self._budget.monthly
        if self.owner is not None and monthly is not None and not self.settled:
            monthly.park(self.owner)


class Budget:
    """Spend tracking with an optional hard cap; ``cap_usd=None`` only tracks."""

    def __init__(
        self,
        cap_usd: float | None,
        spent_before: float,
        prices: PriceTable,
        price_per_image: float | None = None,
    ) -> None:
        if cap_usd is not None and not (math.isfinite(cap_usd) and cap_usd >= 0):
            msg = f"--max-cost must be a number of USD ≥ 0, got {cap_usd!r}"
            raise BudgetError(msg)
        if price_per_image is not None:
            prices = dataclasses.replace(prices, fallback_per_image=price_per_image)
        self.cap_usd = cap_usd
        self.prices = prices
        self._cap = None if cap_usd is None else math.floor(cap_usd * _NANO + 1e-6)
        self._spent = _to_nano(max(spent_before, 0.0))
        self._reserved = 0
        # job id -> worst case (nano) of jobs refused and not reserved since: keyed, not
        # counted, because the pool retries a job that does not fit yet, and one that fits
        # later was sent after all
        self._refused: dict[str, int] = {}
        # actual / reserved seen per model when a bill passed its reservation (a price table
        # behind the provider's): later reservations for that model are scaled up by it
        self._overrun: dict[str | None, float] = {}
        self._lock = threading.Lock()
        # the shared monthly budget(s) (money/monthly.py): a hold in the ledger per reservation
        self.monthly: MonthlyBudget | None = None
        self.refused_by_month = False  # the last refusal was the monthly budget's

    @property
    def spent(self) -> float:
        return self._spent / _NANO

    @property
    def reserved(self) -> float:
        return self._reserved / _NANO

    @property
    def remaining(self) -> float | None:
        """USD still free under the cap (None without a cap)."""
        local = None if self._cap is None else max(self._cap - self._spent - self._reserved, 0)
        if self.monthly is not None and self.monthly.enforced:
            month = self.monthly.remaining_nano()
            local = month if local is None else min(local, month)
        return None if local is None else local / _NANO

    @property
    def limited(self) -> bool:
        """A cap to keep: --max-cost, or a monthly budget in the ledger."""
        return self._cap is not None or (self.monthly is not None and self.monthly.enforced)

    @property
    def refused(self) -> int:
        """Jobs refused and not reserved since (recorded by the caller as class ``budget``)."""
        return len(self._refused)

    def require_priced(self, models: Iterable[str | None]) -> None:
        """Refuse to start a capped run whose cost cannot be bounded."""
        if self._cap is None:
            return
        unpriced = sorted({str(m) for m in models if not self.prices.is_priced(m)})
        if unpriced:
            names = ", ".join(unpriced)
            msg = (
                f"--max-cost cannot be enforced: no price for {names}. Add the model(s) to a "
                "--prices FILE, or pass --price-per-image USD to price every unknown image"
            )
            raise BudgetError(msg)

    def worst_case(self, job: Job) -> float:
        """What :meth:`reserve` would hold for this job (USD)."""
        return self._worst_case_nano(job) / _NANO

    def reserve(self, job: Job) -> Reservation | None:
        """Hold the job's worst case if it fits under the cap; None means "do not send"."""
        amount = self._worst_case_nano(job)
        with self._lock:
            if self._cap is not None and self._spent + self._reserved + amount > self._cap:
                self._refused[job.id] = amount
                self.refused_by_month = False
                return None
            hold_id = None
            if self.monthly is not None and self.monthly.enforced:
                hold_id = self.monthly.hold(amount)
                if hold_id is None:
                    self._refused[job.id] = amount
                    self.refused_by_month = True
                    return None
            self._reserved += amount
            self._refused.pop(job.id, None)
        return Reservation(self, job.id, job.model, amount, hold_id)

    def hold(self, usd: float, label: str, owner: str | None = None) -> Reservation:
        """Hold ``usd`` whatever the cap: money already committed to the provider (a batch
        submitted earlier, still running), so later reservations see it. Settle it with what
        was billed. ``owner``: the batch part's holds in the ledger become this process's
        (taken again when none are left)."""
        amount = _to_nano_up(max(usd, 0.0))
        with self._lock:
            self._reserved += amount
            if owner is not None and self.monthly is not None and self.monthly.enforced:
                self.monthly.adopt(owner, amount)
        return Reservation(self, label, None, amount, owner=owner)

    def combine(self, reservations: list[Reservation], label: str, owner: str) -> Reservation:
        """The jobs' reservations become one, held until the batch ``owner`` names is
        collected (its holds in the ledger released together): nothing is freed between."""
        with self._lock:
            for r in reservations:
                if r.settled:
                    msg = f"reservation for job {r.job_id} was settled twice (a batch bug)"
                    raise BudgetError(msg)
                r.settled = True
            ids = [r.hold_id for r in reservations if r.hold_id is not None]
            if ids and self.monthly is not None:
                self.monthly.own(ids, owner)
        amount = sum(r.amount_nano for r in reservations)
        return Reservation(self, label, None, amount, owner=owner)

    def absorb(self, spent_usd: float, refused: dict[str, float]) -> None:
        """Add what other processes of this run spent and refused under the same cap (a
        cluster's shards, each with its own Budget), so the end is told as one run's."""
        with self._lock:
            self._spent += _to_nano(max(spent_usd, 0.0))
            for job_id, usd in refused.items():
                self._refused[job_id] = _to_nano_up(usd)

    def refused_jobs(self) -> dict[str, float]:
        """Job id -> worst case (USD) of the jobs refused and not reserved since."""
        with self._lock:
            return {job_id: nano / _NANO for job_id, nano in self._refused.items()}

    def exhausted_message(
        self, run_dir: str = "RUN_DIR", remaining_usd: float | None = None
    ) -> str:
        """What happened and how to continue, for the end of a run stopped by the cap."""
        return self.stop_message(run_dir, remaining_usd)

    def stop_message(
        self,
        run_dir: str = "RUN_DIR",
        remaining_usd: float | None = None,
        not_sent: int | None = None,
    ) -> str:
        """:meth:`exhausted_message` told with the rest of the run: ``remaining_usd`` the
        worst case of every job not done yet (what a resume runs), ``not_sent`` how many jobs
        were never sent (the refused ones and those never started). Without them the refused
        jobs are told, and the cap doubled."""
        if self.refused_by_month and self.monthly is not None:
            # what is still held (a batch open at the provider) is in the month's holds the
            # refusal counted: only the rest of the worst case comes on top
            unheld = None if remaining_usd is None else max(remaining_usd - self.reserved, 0.0)
            jobs = self.refused if not_sent is None else max(not_sent, self.refused)
            return self.monthly.refusal_message(run_dir, jobs, unheld)
        cap = self.cap_usd or 0.0
        held = f" (${self.reserved:.4f} still held by jobs in flight)" if self._reserved else ""
        # with the rest of the batch quoted, suggest that; else double the cap. Either way at
        # least enough for what is held and the refused jobs' worst cases, or the suggested
        # resume would stop again at the same job without sending anything
        unblock = (self._spent + self._reserved + sum(self._refused.values())) / _NANO
        if remaining_usd is not None:
            need = max(self.spent + remaining_usd, unblock)
        else:
            need = max(cap * 2 or 1.0, unblock)
        # a cap in whole cents reads as such; another one at the spend's precision, so a spend
        # just under it never looks like it passed it
        cap_text = f"{cap:.2f}" if abs(cap * 100 - round(cap * 100)) < 1e-9 else f"{cap:.4f}"
        suggested = math.ceil(need * 100 - 1e-6) / 100
        rest = (
            f"the jobs not done cost at most ${remaining_usd:.4f} more. "
            if remaining_usd is not None
            else ""
        )
        return (
            f"Budget reached: spent ${self.spent:.4f} of --max-cost ${cap_text}{held}; "
            f"{self._not_sent_text(not_sent)}; {rest}"
            f"To continue: batchgen resume {run_dir} --max-cost {suggested:.2f}"
        )

    def _not_sent_text(self, not_sent: int | None) -> str:
        refused = self.refused
        worst = "its worst case" if refused == 1 else "their worst case"
        if not_sent is None or not_sent <= refused:
            were = "was" if refused == 1 else "were"
            return f"{plural(refused, 'job')} {were} not sent because {worst} would pass the cap"
        were = "was" if not_sent == 1 else "were"
        return (
            f"{plural(not_sent, 'job')} {were} not sent: {refused} refused because {worst} "
            f"would pass the cap, {not_sent - refused} never started"
        )

    def _worst_case_nano(self, job: Job) -> int:
        usd = worst_case_usd(self.prices, job)
        if usd is None:
            if self._cap is None and not (self.monthly is not None and self.monthly.enforced):
                return 0
            msg = (
                f"job {job.id} (line {job.line}): no price for model {job.model!r}, so "
                "--max-cost cannot bound it; add it to a --prices FILE or pass --price-per-image"
            )
            raise BudgetError(msg)
        return _to_nano_up(usd * self._overrun.get(job.model, 1.0))

    def _settle(self, reservation: Reservation, actual_usd: float | None) -> None:
        with self._lock:
            if reservation.settled:
                msg = f"reservation for job {reservation.job_id} was settled twice (a pool bug)"
                raise BudgetError(msg)
            reservation.settled = True
            actual = (
                reservation.amount_nano if actual_usd is None else _to_nano(max(actual_usd, 0.0))
            )
            self._reserved -= reservation.amount_nano
            self._spent += actual
            if reservation.hold_id is not None and self.monthly is not None:
                # the attempt's row is in the ledger by now (the sink records it first)
                self.monthly.release(reservation.hold_id)
            if reservation.owner is not None and self.monthly is not None:
                self.monthly.release_owner(reservation.owner)  # the batch's rows are in too
            if actual > reservation.amount_nano > 0:
                ratio = actual / reservation.amount_nano
                self._overrun[reservation.model] = max(
                    self._overrun.get(reservation.model, 1.0), ratio
                )
