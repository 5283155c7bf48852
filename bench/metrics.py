"""Figures from what the simulator saw, and targets to hold them against. Pure functions, so
the harness's arithmetic has tests of its own (tests/test_bench_harness.py)."""

from __future__ import annotations

import operator
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RATE_LIMITED = "server_rate_limited"  # batchgen.sim.stats.SERVER_RATE_LIMITED
CONCURRENCY_LIMITED = "concurrency_limited"  # batchgen.sim.stats.CONCURRENCY_LIMITED
_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True, slots=True)
class Target:
    op: str  # ">=" or "<="
    bound: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            msg = f"Target op {self.op!r}: use one of {sorted(_OPS)}"
            raise ValueError(msg)

    def met(self, value: float | None) -> bool:
        return value is not None and _OPS[self.op](value, self.bound)

    def __str__(self) -> str:
        return f"{self.op} {self.bound:g}"


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure beside its target (``target=None``: shown for context only)."""

    name: str
    value: float | None
    target: Target | None = None
    unit: str = ""
    note: str = ""

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": str(self.target) if self.target else None,
            "passed": self.passed,
            "note": self.note,
        }


def window_rate(
    timeline: Sequence[Sequence[float]],
    start: float | None = None,
    end: float | None = None,
    *,
    images: bool = False,
) -> float:
    """Accepted requests (or images) per minute from the simulator's ``accepted`` timeline
    ([[t, n], ...]). With no window: from the first acceptance to the last, counting every
    event but the first (N events at a steady rate r span (N - 1) / r seconds). With a window:
    the events in ``[start, end)`` over its length."""
    if not timeline:
        return 0.0
    weight = (lambda n: n) if images else (lambda n: 1)
    if start is None and end is None:
        span = timeline[-1][0] - timeline[0][0]
        total = sum(weight(n) for _, n in timeline[1:])
        return total * 60.0 / span if span > 0 else 0.0
    t0 = timeline[0][0] if start is None else start
    t1 = timeline[-1][0] if end is None else end
    if t1 <= t0:
        return 0.0
    total = sum(weight(n) for t, n in timeline if t0 <= t < t1)
    return total * 60.0 / (t1 - t0)


def run_rate(
    timeline: Sequence[Sequence[float]], first_received: float | None, *, images: bool = False
) -> float:
    """Accepted requests (or images) per minute over the whole run, warm-up included: from the
    first request the simulator received (refused or not) to the last one it accepted.

    Counted like :func:`window_rate` (every acceptance after the first, N − 1 intervals for N
    events), so when the first request was accepted the two agree; a client that opened with
    refused requests has that time counted against it."""
    if not timeline:
        return 0.0
    start = timeline[0][0] if first_received is None else min(first_received, timeline[0][0])
    span = timeline[-1][0] - start
    weight = (lambda n: n) if images else (lambda n: 1)
    total = sum(weight(n) for _, n in timeline[1:])
    return total * 60.0 / span if span > 0 else 0.0


def rate_limited_share(stats: Mapping[str, Any]) -> float:
    """429s from the simulator's own limits per request received: its rate limit and its cap
    on concurrent requests (not the random ``rate_limit`` fault)."""
    received = int(stats.get("received", 0))
    if received == 0:
        return 0.0
    outcomes = stats.get("outcomes", {})
    limited = int(outcomes.get(RATE_LIMITED, 0)) + int(outcomes.get(CONCURRENCY_LIMITED, 0))
    return limited / received


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def median(values: Sequence[float | None]) -> float | None:
    """Median of the values that were measured (None = that repeat did not run)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def median_figures(runs: Sequence[Sequence[Figure]]) -> list[Figure]:
    """Repeats of one benchmark → one figure per name, its value the median of the repeats."""
    if not runs:
        return []
    out = []
    for first in runs[0]:
        values = [f.value for run in runs for f in run if f.name == first.name]
        note = first.note
        if len(runs) > 1:
            # the first repeat's note (sizes, set-up) stays: it says what was measured
            note = f"{note}; median of {len(values)}" if note else f"median of {len(values)}"
        out.append(Figure(first.name, median(values), first.target, first.unit, note))
    return out
