"""The pilot's table as plain text (what `batchgen pilot` prints, and docs/pilot.md shows)."""

from __future__ import annotations

from typing import Any

from batchgen.pilot.plan import PilotPlan
from batchgen.reports.pilot import with_interval


def _money(v: float | None) -> str:
    if v is None:
        return "—"
    return f"${v:,.4f}" if v < 1 else f"${v:,.2f}"


def _dur(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 90:
        return f"{s:.0f}s"
    if s < 5400:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.1f}h"


def table_lines(result: dict[str, Any], plan: PilotPlan) -> list[str]:
    head = (
        "setting",
        "ok",
        "mean score (95%)",
        f"pass≥{plan.bar:g} (95%)",
        f"low{plan.confidence:.0%}",
        "$/image",
        "$/passing",
        "p50",
        "job file $",
        "with regen $",
        "time",
    )
    rows = [head]
    for s in result["settings"]:
        mean = with_interval(s["mean_score"], s["mean_ci"], lambda v: f"{v:.2f}")
        rate = with_interval(s["pass_rate"], s["pass_ci"], lambda v: f"{v:.0%}")
        rows.append(
            (
                s["label"],
                f"{s['images']}/{s['jobs']}",
                mean,
                rate,
                f"{s['pass_lower']:.0%}",
                _money(s["cost_per_image"]),
                _money(s["cost_per_passing"]),
                "—" if s["latency_p50_s"] is None else f"{s['latency_p50_s']:.1f}s",
                _money(s["projected_cost_usd"]),
                _money(s["projected_cost_passing_usd"]),
                _dur(s["projected_time_s"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def verdict_lines(result: dict[str, Any], plan: PilotPlan) -> list[str]:
    out = [
        f"the job file: {plan.jobs_total:,} jobs, {plan.images_total:,} images; this pilot "
        f"cost {_money(result['images_cost_usd'])} for images + "
        f"{_money(result['judge_cost_usd'])} for scoring",
    ]
    if result["chosen"]:
        out.append(f"chosen: {result['chosen']} — {result['reason']}")
    else:
        hint = "; a larger --sample narrows the intervals" if result.get("closest") else ""
        out.append(f"none chosen: {result['reason']}{hint}")
    return out
