"""Ratings of a run against thresholds (defaults from the design notes; configurable).

Decisions, so the report is unambiguous:
* response time is rated on the **p95** latency of successful attempts: a batch's wall time
  is driven by its slow tail, and p50 hides a provider that stalls one request in ten;
* success rate is over **decided jobs** (succeeded + failed): pending jobs have not had
  their chance yet, and a stopped run would otherwise look like a failing one;
* response time is judged against what is **usual for the run's models** (by model, quality
  and size: batchgen.provider.typical), not one scale for all: a 25 s p95 is ordinary for
  gpt-image-1 at medium quality and slow for FLUX; the rating says what its baseline was.
  Thresholds set by the caller are kept as they are;
* anything worse than the "acceptable" bound is **poor**: the design notes leave 0.85–0.90
  (success) and $0.06–$0.10 (cost per image) unnamed, and a figure that misses "acceptable"
  is a problem to act on, so it gets the label that says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from batchgen.analyze.model import Rating
from batchgen.provider.typical import Typical, p95_of, typical_latency

LABELS = ("excellent", "good", "acceptable", "poor")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """(excellent, good, acceptable) bounds; beyond the last is poor."""

    latency_p95_s: tuple[float, float, float] = (3.0, 8.0, 15.0)
    success_rate: tuple[float, float, float] = (0.98, 0.95, 0.90)
    cost_per_image_usd: tuple[float, float, float] = (0.02, 0.04, 0.06)


DEFAULT_THRESHOLDS = Thresholds()


def rate_at_most(value: float | None, bounds: tuple[float, float, float]) -> str | None:
    """Lower is better (latency, cost)."""
    if value is None:
        return None
    for label, bound in zip(LABELS, bounds, strict=False):
        if value <= bound:
            return label
    return LABELS[-1]


def rate_at_least(value: float | None, bounds: tuple[float, float, float]) -> str | None:
    """Higher is better (success rate)."""
    if value is None:
        return None
    for label, bound in zip(LABELS, bounds, strict=False):
        if value >= bound:
            return label
    return LABELS[-1]


@dataclass(frozen=True, slots=True)
class LatencyBaseline:
    """The usual p95 of the run's models (batchgen.provider.typical), weighted by their
    share of the successes, and what it is, in words."""

    p95_s: float
    what: str

    def bounds(self) -> tuple[float, float, float]:
        """Excellent: faster than usual; good: usual; acceptable: up to twice the usual."""
        return (0.75 * self.p95_s, 1.25 * self.p95_s, 2.0 * self.p95_s)


def latency_baseline(
    groups: list[tuple[str | None, str | None, str | None, int]],
    time_scale: float = 1.0,
) -> LatencyBaseline | None:
    """From (model, quality, size, successes) groups; None when nothing succeeded.
    ``time_scale``: the simulator's ``--sim-time-scale`` when the run was replayed faster (the
    demo runs at × 0.05): the usual times are scaled with it, and the baseline says so."""
    total = sum(n for *_, n in groups)
    if total <= 0:
        return None
    mixed: list[tuple[Typical, float]] = []
    parts: list[tuple[int, str]] = []
    for model, quality, size, n in groups:
        typical = typical_latency(model, quality, size)
        mixed.append((typical, n / total))
        parts.append((n, f"{typical.source} ~{typical.median_s:g} s median"))
    p95 = mixture_p95(mixed)
    parts.sort(reverse=True)
    what = "; ".join(text for _, text in parts[:3]) + (" …" if len(parts) > 3 else "")
    if time_scale != 1.0:
        p95 *= time_scale
        what += f"; × {time_scale:g}, the simulator's time scale"
    return LatencyBaseline(p95, f"usual p95 {p95:.1f} s ({what})")


def mixture_p95(mixed: list[tuple[Typical, float]]) -> float:
    """The 95th percentile of a run whose requests are drawn from several models' usual
    latencies (lognormal each, by share): where the mixture's distribution function is 0.95,
    found by bisection on the log. Not the shares' mean of each model's p95: a run with a
    fifth of its requests at gpt-image-1 high has a p95 near theirs, far above that mean."""
    if len(mixed) == 1:
        return p95_of(mixed[0][0])

    def below(x: float) -> float:
        return sum(
            share * _NORMAL.cdf((math.log(x) - math.log(t.median_s)) / t.sigma)
            for t, share in mixed
        )

    lo = math.log(min(t.median_s for t, _ in mixed))
    hi = math.log(max(p95_of(t) for t, _ in mixed))
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if below(math.exp(mid)) < 0.95 else (lo, mid)
    return math.exp(hi)


_NORMAL = NormalDist()


def rate_run(
    *,
    latency_p95_s: float | None,
    success_rate: float | None,
    cost_per_image_usd: float | None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    baseline: LatencyBaseline | None = None,
) -> dict[str, Rating]:
    """The three ratings of a run's figures, by the report's keys (response_time,
    success_rate, cost_per_image). ``baseline``: judge the p95 latency against the run's
    models' usual one (unless the caller set its own latency thresholds): a 25 s p95 is
    ordinary for gpt-image-1."""
    bounds = thresholds.latency_p95_s
    judged = baseline if bounds == DEFAULT_THRESHOLDS.latency_p95_s else None
    if judged is not None:
        low, mid, high = judged.bounds()
        bounds = (round(low, 1), round(mid, 1), round(high, 1))
    return {
        "response_time": Rating(
            metric="latency_s.p95",
            value=latency_p95_s,
            rating=rate_at_most(latency_p95_s, bounds),
            bounds=bounds,
            baseline=judged.what if judged is not None else None,
        ),
        "success_rate": Rating(
            metric="success_rate",
            value=success_rate,
            rating=rate_at_least(success_rate, thresholds.success_rate),
            bounds=thresholds.success_rate,
        ),
        "cost_per_image": Rating(
            metric="cost_per_image_usd",
            value=cost_per_image_usd,
            rating=rate_at_most(cost_per_image_usd, thresholds.cost_per_image_usd),
            bounds=thresholds.cost_per_image_usd,
        ),
    }
