"""The cluster's one ``--max-cost``: a reservation for the whole run, drawn by the shards in
small chunks.

A named Ray actor (``BudgetActor``) holds a ``SharedBudget``: the USD still free under the cap.
Each shard's pool reserves a job's worst case before sending it, as a local run does, from a
``ClusterBudget``: a Budget whose cap is what this shard has drawn from the actor so far. When
a job does not fit, the shard draws what it lacks plus a few more jobs' worth (one actor call
per ``CHUNK_JOBS`` jobs, not per job); the actor gives all that is asked, what is free if that
covers the need, or nothing. A job settled below its worst case leaves the difference in the
shard's chunk for its next job; a shard that ends, or finds nothing fits, gives its unspent
chunk back for the others.

So the cluster's spend never passes the cap: every nano-dollar a shard spends or holds was
drawn from the actor once, and the actor never hands out more than the cap left. A shard the
actor refuses stops as a local run stops at its budget (class ``budget``, the jobs pending);
the driver tells the end as one run's, with the ``resume --max-cost`` that lets the rest
through. A shard that dies keeps what it drew (it may have spent it): conservative.

``SharedBudget`` is pure (no Ray, no clock), so its tests need neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchgen.jobs.model import Job
from batchgen.money import Budget, PriceTable, Reservation
from batchgen.numbers import plural

NANO = 1_000_000_000
CHUNK_JOBS = 8  # a draw covers the job that did not fit and about this many more like it
SPREAD = 4


@dataclass(slots=True)
class SharedBudget:
    """What is left of the cluster's cap (nano-USD), and what the shards drew."""

    free: int
    calls: int = 0
    drawn: int = 0
    returned: int = 0
    refusals: int = 0

    def draw(self, need: int, want: int) -> tuple[int, int]:
        """Up to ``want`` if at least ``need`` is free, else nothing: (given, free after)."""
        self.calls += 1
        if need > self.free:
            self.refusals += 1
            return 0, self.free
        # beyond its need a draw takes at most 1/SPREAD of what is free: while the cap binds,
        # the shards share its tail rather than one holding it while the others stop
        given = max(need, min(want, self.free // SPREAD))
        self.free -= given
        self.drawn += given
        return given, self.free

    def give_back(self, amount: int) -> int:
        self.calls += 1
        amount = max(0, amount)
        self.free += amount
        self.returned += amount
        return self.free

    def figures(self) -> dict[str, float | int]:
        return {
            "calls": self.calls,
            "drawn_usd": round(self.drawn / NANO, 6),
            "returned_usd": round(self.returned / NANO, 6),
            "free_usd": round(self.free / NANO, 6),
            "refusals": self.refusals,
        }


class BudgetActor:
    """The Ray actor around a SharedBudget (made remote by ``cluster.driver``), named after the
    run. A plain actor runs its calls one at a time, so no lock."""

    def __init__(self, free_usd: float) -> None:
        self.budget = SharedBudget(max(0, int(free_usd * NANO)))

    def draw(self, need: int, want: int) -> tuple[int, int]:
        return self.budget.draw(need, want)

    def give_back(self, amount: int) -> int:
        return self.budget.give_back(amount)

    def figures(self) -> dict[str, float | int]:
        return self.budget.figures()


class ClusterBudget(Budget):
    """A shard's Budget: its cap is what it drew from the cluster's BudgetActor.

    ``draw`` is the actor's (``need, want -> (given, free)``, nano-USD) and ``give_back`` its
    return of an unspent chunk (``amount -> free``); on a worker both are a blocking call to
    the actor (milliseconds, once a chunk: :func:`through_actor`)."""

    def __init__(
        self,
        cap_usd: float,
        prices: PriceTable,
        draw: Callable[[int, int], tuple[int, int]],
        give_back: Callable[[int], int],
    ) -> None:
        super().__init__(0.0, 0.0, prices)
        self.cluster_cap_usd = cap_usd
        self._draw_from = draw
        self._give_back_to = give_back
        self.calls = 0
        self._cluster_free = 0  # nano-USD the actor had left at the last call

    def reserve(self, job: Job) -> Reservation | None:
        held = super().reserve(job)
        if held is not None:
            return held
        amount = self._worst_case_nano(job)
        need = self._spent + self._reserved + amount - self._held_cap()
        if need > 0:
            given = self._draw(need, need + (CHUNK_JOBS - 1) * amount)
            if given:
                with self._lock:
                    self._cap = self._held_cap() + given
                return super().reserve(job)
        if self._reserved == 0:
            self.give_back()  # nothing in flight here and this job does not fit: let others
        return None

    @property
    def remaining(self) -> float | None:
        local = super().remaining or 0.0
        return local + self._cluster_free / NANO

    def give_back(self) -> None:
        """Return what is drawn and neither spent nor held by a job in flight."""
        with self._lock:
            unspent = self._held_cap() - self._spent - self._reserved
            if unspent <= 0:
                return
            self._cap = self._held_cap() - unspent
        self.calls += 1
        self._cluster_free = self._give_back_to(unspent)

    def exhausted_message(
        self, run_dir: str = "RUN_DIR", remaining_usd: float | None = None
    ) -> str:
        # the driver tells the end with every shard's spend (Budget.absorb); this is one shard's
        return (
            f"Budget reached: this shard spent ${self.spent:.4f} of the cluster's --max-cost "
            f"${self.cluster_cap_usd:.4f}; {plural(self.refused, 'job')} "
            f"{'was' if self.refused == 1 else 'were'} not sent"
        )

    def _held_cap(self) -> int:
        return self._cap or 0

    def _draw(self, need: int, want: int) -> int:
        self.calls += 1
        given, self._cluster_free = self._draw_from(need, want)
        return int(given)


def through_actor(
    actor: Any,
) -> tuple[Callable[[int, int], tuple[int, int]], Callable[[int], int]]:
    """A BudgetActor handle's draw and give_back as blocking calls (an ObjectRef's future:
    ``ray.get`` without importing ray here)."""

    def draw(need: int, want: int) -> tuple[int, int]:
        given, free = actor.draw.remote(need, want).future().result()
        return int(given), int(free)

    def give_back(amount: int) -> int:
        return int(actor.give_back.remote(amount).future().result())

    return draw, give_back
