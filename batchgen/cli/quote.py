"""The quote for people (a rich table) and for programs (a JSON-ready dict)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from batchgen.money.quote import Quote, QuoteLine, WallTime


def usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def usd_range(low: float | None, expected: float | None, high: float | None) -> str:
    """``$4.22`` when exact, ``$4.22 ($1.09–$16.64)`` when quality or size is not known."""
    if expected is None:
        return "unknown"
    if low is None or high is None or high - low < 1e-12:
        return usd(expected)
    return f"{usd(expected)} ({usd(low)}–{usd(high)})"


def duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def wall_sentence(wall: WallTime, band: tuple[float, float] | None = None) -> str:
    why = {
        "rpm": f"--rpm {wall.rpm or 0:g} binds",
        "ipm": f"--ipm {wall.ipm or 0:g} binds",
        "concurrency": f"--concurrency {wall.concurrency} binds",
        "latency": "one request's latency",
        "none": "no jobs",
    }[wall.bound]
    text = (
        f"Minimum wall time: {duration(wall.seconds)} ({why}; assuming {wall.latency_s:.3g} s "
        "per request — set --assume-latency to your observed latency)"
    )
    if band is not None and band[1] > band[0]:
        low, high = band
        text += f"; expect {duration(low)}–{duration(high)} with the autopilot's slow start"
    return text


def quote_renderable(quote: Quote, *, title: str = "Estimated cost") -> Group:
    table = Table(title=title, title_justify="left")
    for header, justify in (
        ("model", "left"),
        ("quality", "left"),
        ("size", "left"),
        ("jobs", "right"),
        ("images", "right"),
        ("estimated cost (range)", "right"),
        ("assumption", "left"),
    ):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for line in quote.lines:
        table.add_row(*_cells(line))
    table.add_section()
    total = usd_range(quote.low_usd, quote.expected_usd, quote.high_usd)
    table.add_row("total", "", "", f"{quote.jobs:,}", f"{quote.images:,}", total, "")
    parts: list[Any] = [table, Text(wall_sentence(quote.wall, quote.wall_band()))]
    if quote.unknown_models:
        names = ", ".join(quote.unknown_models)
        parts.append(
            Text(
                f"Cost unknown for {names}: not in the price table, so not in the total. "
                "Add them with --prices FILE or give --price-per-image USD.",
                style="yellow",
            )
        )
    return Group(*parts)


def format_quote(quote: Quote, *, width: int = 110) -> str:
    """The quote as plain text (the same layout as on a terminal, without colour)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False)
    console.print(quote_renderable(quote))
    return buffer.getvalue()


def _cells(line: QuoteLine) -> tuple[str, ...]:
    return (
        line.model,
        line.quality,
        line.size,
        f"{line.jobs:,}",
        f"{line.images:,}",
        usd_range(line.low_usd, line.expected_usd, line.high_usd),
        line.assumption,
    )
