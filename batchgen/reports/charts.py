"""The HTML report's charts: matplotlib (Agg, no display) rendered to inline base64 PNG, so the
page is one offline file."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")  # a report is written on servers and in CI: never ask for a display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from batchgen.analyze.model import RunReport

COLORS = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea")
Draw = Callable[[Any, list[RunReport]], None]


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _chart(title: str, xlabel: str, ylabel: str, draw: Draw, reports: list[RunReport]) -> str:
    fig, ax = plt.subplots(figsize=(6.0, 3.0))
    draw(ax, reports)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _png(fig)


def _label(r: RunReport, reports: list[RunReport], what: str = "") -> str | None:
    """Legend text: the run's name when runs are compared, else only what a line shows."""
    name = str(r.run_name or r.run_dir) if len(reports) > 1 else ""
    text = ": ".join(p for p in (name, what) if p)
    return text or None


def _latency(ax: Any, reports: list[RunReport]) -> None:
    for i, r in enumerate(reports):
        h = r.latency_histogram
        if not h.counts:
            continue
        edges = np.asarray(h.edges)
        ax.stairs(
            h.counts,
            edges,
            fill=len(reports) == 1,
            alpha=0.6 if len(reports) == 1 else 1,
            color=COLORS[i % len(COLORS)],
            label=_label(r, reports),
        )
        p95 = r.latency_s.p95
        if p95 is not None:
            ax.axvline(p95, color=COLORS[i % len(COLORS)], linestyle="--", linewidth=1)


def time_axis(reports: list[RunReport]) -> tuple[float, str]:
    """The time axis' unit, chosen by how long the runs lasted: (seconds per unit, name). A
    15-second run is drawn in seconds (not 0.00-0.25 minutes), an afternoon in hours."""
    span = max(
        (r.series.t[-1] + r.series.bin_s for r in reports if r.series.t and r.series.bin_s),
        default=0.0,
    )
    if span <= 180:
        return 1.0, "seconds"
    if span <= 3 * 3600:
        return 60.0, "minutes"
    return 3600.0, "hours"


def _times(r: RunReport, reports: list[RunReport]) -> np.ndarray:
    return np.asarray(r.series.t, dtype=float) / time_axis(reports)[0]


def _throughput(ax: Any, reports: list[RunReport]) -> None:
    unit = time_axis(reports)[0]
    for i, r in enumerate(reports):
        s = r.series
        if not s.t or s.bin_s is None:
            continue
        edges = np.append(_times(r, reports), (s.t[-1] + s.bin_s) / unit)
        per_min = np.asarray(s.images) * 60.0 / s.bin_s
        ax.stairs(
            per_min,
            edges,
            color=COLORS[i % len(COLORS)],
            linewidth=1.5,
            label=_label(r, reports, "images/min"),
        )
        limited = np.asarray(s.rate_limited) * 60.0 / s.bin_s
        if limited.any():
            ax.stairs(
                limited,
                edges,
                color=COLORS[3],
                alpha=0.6,
                linewidth=1,
                label=_label(r, reports, "429 answers/min"),
            )


def _cost(ax: Any, reports: list[RunReport]) -> None:
    for i, r in enumerate(reports):
        s = r.series
        if s.t and s.bin_s is not None:
            # spend is known at the end of each bin: start the line at (0, $0)
            ends = np.append(0.0, _times(r, reports) + s.bin_s / time_axis(reports)[0])
            ax.plot(
                ends,
                np.append(0.0, np.cumsum(s.cost_usd)),
                color=COLORS[i % len(COLORS)],
                label=_label(r, reports),
            )


def _errors(ax: Any, reports: list[RunReport]) -> None:
    classes = sorted({c for r in reports for c in r.errors})
    if not classes:
        ax.text(0.5, 0.5, "no errors", ha="center", va="center", transform=ax.transAxes)
        return
    width = 0.8 / len(reports)
    y = np.arange(len(classes))
    for i, r in enumerate(reports):
        ax.barh(
            y + i * width,
            [r.errors.get(c, 0) for c in classes],
            height=width,
            color=COLORS[i % len(COLORS)],
            label=_label(r, reports),
        )
    ax.set_yticks(y + width * (len(reports) - 1) / 2, classes)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # attempts: whole numbers


def charts(reports: list[RunReport]) -> dict[str, str]:
    """name → data: URL of a PNG, for one run or several overlaid."""
    since = f"{time_axis(reports)[1]} since first attempt"
    return {
        "latency": _chart(
            "Latency of successful attempts (dashed: p95)", "seconds", "attempts", _latency, reports
        ),
        "throughput": _chart(
            "Throughput over time",
            since,
            "per minute",
            _throughput,
            reports,
        ),
        "cost": _chart("Cumulative cost", since, "USD", _cost, reports),
        "errors": _chart("Failed attempts by class", "attempts", "", _errors, reports),
    }
