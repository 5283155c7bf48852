"""Ratings of a run against thresholds (defaults from the design notes; configurable).

Decisions, so the report is unambiguous:
* response time is rated on the **p95** latency of successful attempts: a batch's wall time
  is driven by its slow tail, and p50 hides a provider that stalls one request in ten;
* success rate is over **decided jobs** (succeeded + failed): pending jobs have not had
  their chance yet, and a stopped run would otherwise look like a failing one;
* anything worse than the "acceptable" bound is **poor**: the design notes leave 0.85–0.90
  (success) and $0.06–$0.10 (cost per image) unnamed, and a figure that misses "acceptable"
  is a problem to act on, so it gets the label that says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def rate_run(
    figures: dict[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> dict[str, Any]:
    p95 = (figures.get("latency_s") or {}).get("p95")
    return {
        "response_time": {
            "metric": "latency_s.p95",
            "value": p95,
            "rating": rate_at_most(p95, thresholds.latency_p95_s),
            "bounds": list(thresholds.latency_p95_s),
        },
        "success_rate": {
            "metric": "success_rate",
            "value": figures.get("success_rate"),
            "rating": rate_at_least(figures.get("success_rate"), thresholds.success_rate),
            "bounds": list(thresholds.success_rate),
        },
        "cost_per_image": {
            "metric": "cost_per_image_usd",
            "value": figures.get("cost_per_image_usd"),
            "rating": rate_at_most(
                figures.get("cost_per_image_usd"), thresholds.cost_per_image_usd
            ),
            "bounds": list(thresholds.cost_per_image_usd),
        },
    }
