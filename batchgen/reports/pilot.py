"""The HTML section of a pilot's run directory (``batchgen pilot``): its settings side by
side — the per-setting table, a chart of the pass rates with their intervals against the
target (inline SVG), and thumbnails of a few sampled jobs under each setting.

It reads ``pilot.json`` and ``pilot-result.json`` as files (the pilot package sits above
reports); a run directory without them gets no section."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchgen.analyze.model import RunReport

Escape = Callable[[Any], str]
Thumb = Callable[[Path], "str | None"]
THUMB_ROWS = 6


def _load(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    try:
        plan = json.loads((run_dir / "pilot.json").read_text("utf-8"))
        result = json.loads((run_dir / "pilot-result.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(plan, dict) or not isinstance(result, dict):
        return None
    return plan, result


def _usd(v: float | None) -> str:
    return "—" if v is None else (f"${v:,.4f}" if v < 1 else f"${v:,.2f}")


def with_interval(value: float | None, ci: Any, fmt: Callable[[float], str]) -> str:
    """``7.20 [6.90–7.50]``: a pilot's figure and its interval, or a dash without one."""
    return "—" if value is None else f"{fmt(value)} [{fmt(ci[0])}–{fmt(ci[1])}]"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0%}"


def pilot_html(
    r: RunReport, out_dir: Path, e: Escape, table: Callable[..., str], thumb: Thumb
) -> str:
    loaded = _load(Path(r.run_dir))
    if loaded is None:
        return ""
    plan, result = loaded
    try:
        return _section(plan, result, Path(r.run_dir), e, table, thumb)
    except (KeyError, TypeError, ValueError, IndexError):
        return '<h2>Pilot</h2><p class="muted">pilot-result.json cannot be read.</p>'


def _section(
    plan: dict[str, Any],
    result: dict[str, Any],
    run_dir: Path,
    e: Escape,
    table: Callable[..., str],
    thumb: Thumb,
) -> str:
    settings = result["settings"]
    rows = []
    for s in settings:
        mean = with_interval(s["mean_score"], s["mean_ci"], lambda v: f"{v:.2f}")
        rate = with_interval(s["pass_rate"], s["pass_ci"], _pct)
        mark = " ★" if s["label"] == result.get("chosen") else ""
        rows.append(
            [
                e(s["label"] + mark),
                f"{s['images']}/{s['jobs']}",
                e(mean),
                e(rate),
                e(_pct(s["pass_lower"])),
                e(_usd(s["cost_per_image"])),
                e(_usd(s["cost_per_passing"])),
                "—" if s["latency_p50_s"] is None else f"{s['latency_p50_s']:.1f}s",
                e(_usd(s["projected_cost_usd"])),
                e(_usd(s["projected_cost_passing_usd"])),
            ]
        )
    header = [
        "setting",
        "images",
        "mean score (95%)",
        f"pass ≥ {plan['bar']:g} (95%)",
        f"lower bound ({plan['confidence']:.0%})",
        "$/image",
        "$/passing image",
        "latency p50",
        "job file",
        "job file with regenerations",
    ]
    verdict = (
        f"chosen: <b>{e(result['chosen'])}</b> — {e(result['reason'])}"
        if result.get("chosen")
        else f"none chosen: {e(result['reason'])}"
    )
    return (
        "<h2>Pilot: settings side by side</h2>"
        f'<p class="muted">{len(plan["sample"])} sampled jobs of {plan["jobs_total"]:,} '
        f"(seed {plan['seed']}); target pass rate {plan['target']:g}</p>"
        + table(header, rows, {1, 2, 3, 4, 5, 6, 7, 8, 9})
        + f"<p>{verdict}</p>"
        + _chart(settings, float(plan["target"]), e)
        + _thumbs(plan, settings, run_dir, e, table, thumb)
    )


def _chart(settings: list[dict[str, Any]], target: float, e: Escape) -> str:
    """Pass rate per setting as a bar, its 95% interval as a whisker, the target a line."""
    width, bar_h, gap, left = 520, 18, 10, 230
    height = len(settings) * (bar_h + gap) + 20
    span = width - left - 10
    parts = [
        f'<svg role="img" aria-label="pass rate by setting" width="{width}" '
        f'height="{height}" style="font:12px sans-serif">'
    ]
    for i, s in enumerate(settings):
        y = 10 + i * (bar_h + gap)
        rate = s["pass_rate"] or 0.0
        parts.append(f'<text x="0" y="{y + 13}">{e(s["label"][:34])}</text>')
        parts.append(
            f'<rect x="{left}" y="{y}" width="{rate * span:.1f}" height="{bar_h}" fill="#6b8fd6"/>'
        )
        if s["pass_ci"]:
            lo, hi = s["pass_ci"]
            ym = y + bar_h / 2
            parts.append(
                f'<line x1="{left + lo * span:.1f}" x2="{left + hi * span:.1f}" '
                f'y1="{ym}" y2="{ym}" stroke="#222" stroke-width="2"/>'
            )
    tx = left + target * span
    parts.append(
        f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="0" y2="{height}" stroke="#c0392b" '
        'stroke-dasharray="4 3"/>'
    )
    parts.append("</svg>")
    return "<h3>Pass rate (95% interval; dashed: the target)</h3>" + "".join(parts)


def _thumbs(
    plan: dict[str, Any],
    settings: list[dict[str, Any]],
    run_dir: Path,
    e: Escape,
    table: Callable[..., str],
    thumb: Thumb,
) -> str:
    images = run_dir / "images"
    rows = []
    for job in plan["sample"][:THUMB_ROWS]:
        cells = [e(job["id"])]
        for s in settings:
            found = sorted(images.glob(f"{job['id']}={s['slug']}_*"))
            data = thumb(found[0]) if found else None
            cells.append(
                f'<img loading="lazy" src="{data}" alt="{e(s["label"])}">'
                if data
                else '<span class="muted">—</span>'
            )
        rows.append(cells)
    header = ["sampled job", *[s["label"] for s in settings]]
    return "<h3>The same jobs under each setting</h3>" + table(header, rows, cls="grid")
