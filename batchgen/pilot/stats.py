"""The pilot's statistics: a Wilson score interval for a pass rate, a bootstrap interval for
a mean score, and the rule that picks a setting. Pure functions (no I/O), seeded.

Why Wilson: a pilot has a few dozen images per setting and pass rates near 1, where the
normal ("Wald") interval collapses to zero width at 24/24; Wilson's stays honest there and
its coverage is close to nominal for small n (tests/test_pilot_stats.py measures it).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist, fmean


def z_two_sided(level: float) -> float:
    """z of a two-sided interval at ``level`` (0.95 → 1.96)."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def z_one_sided(level: float) -> float:
    """z of a one-sided bound at ``level`` (0.8 → 0.842)."""
    return NormalDist().inv_cdf(level)


def wilson(passed: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of ``passed`` successes in ``n`` trials at this z; (0, 1) for
    n = 0 (nothing is known)."""
    if n <= 0:
        return 0.0, 1.0
    p = passed / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denom = 1 + z2 / n
    return max(0.0, (centre - spread) / denom), min(1.0, (centre + spread) / denom)


def wilson_lower(passed: int, n: int, confidence: float) -> float:
    """The one-sided lower confidence bound of the pass rate at ``confidence``."""
    return wilson(passed, n, z_one_sided(confidence))[0]


def bootstrap_mean(
    values: Sequence[float], level: float = 0.95, *, rounds: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded, so a pilot prints the same table
    twice). One value or none: the interval is the value itself / (nan, nan)."""
    if not values:
        return math.nan, math.nan
    if len(values) == 1:
        return values[0], values[0]
    rng = random.Random(seed)
    n = len(values)
    means = sorted(fmean(rng.choices(values, k=n)) for _ in range(rounds))
    tail = (1 - level) / 2
    lo = means[max(0, math.floor(tail * rounds))]
    hi = means[min(rounds - 1, math.ceil((1 - tail) * rounds) - 1)]
    return lo, hi


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the choice reads of one setting."""

    label: str
    images: int  # images scored
    passed: int  # of them at or above the bar
    cost_per_image: float | None  # None: unknown


@dataclass(frozen=True, slots=True)
class Choice:
    chosen: str | None  # the label picked, or None: no setting meets the target
    closest: str | None  # without a pick: the setting with the highest lower bound
    lower_bounds: dict[str, float]
    reason: str


def per_passing(cost_per_image: float | None, passed: int, images: int) -> float | None:
    """Expected cost of one image that passes the bar: cost ÷ pass rate (the regenerations
    it takes on average); None when unknown or nothing passed."""
    if cost_per_image is None or images <= 0 or passed <= 0:
        return None
    return cost_per_image / (passed / images)


def choose(candidates: Sequence[Candidate], target: float, confidence: float) -> Choice:
    """The cheapest setting (by expected cost per passing image, then cost per image) whose
    pass rate meets ``target`` at ``confidence``: its Wilson one-sided lower bound ≥ target.
    Without one: none is chosen, and the closest is the one with the highest lower bound."""
    lower = {c.label: wilson_lower(c.passed, c.images, confidence) for c in candidates}
    ok = [c for c in candidates if c.images and lower[c.label] >= target]

    def price(c: Candidate) -> tuple[float, float]:
        each = per_passing(c.cost_per_image, c.passed, c.images)
        return (
            math.inf if each is None else each,
            math.inf if c.cost_per_image is None else c.cost_per_image,
        )

    if ok:
        best = min(ok, key=price)
        why = (
            f"cheapest per passing image of the {len(ok)} setting(s) whose pass rate is "
            f"≥ {target:g} at {confidence:.0%} confidence (Wilson lower bound)"
        )
        return Choice(best.label, None, lower, why)
    if not candidates:
        return Choice(None, None, lower, "no setting was tried")
    closest = max(candidates, key=lambda c: (lower[c.label], -price(c)[0]))
    return Choice(
        None,
        closest.label,
        lower,
        f"no setting's pass rate is ≥ {target:g} at {confidence:.0%} confidence; "
        f"closest: {closest.label} (lower bound {lower[closest.label]:.2f})",
    )
