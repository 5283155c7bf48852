"""Numbers for people: what every output (progress line, text, Markdown, HTML, JSON) uses
instead of ``str(float)``, so no ``0.008478000000000001``, ``1e+06`` or
``0.012600879399906258`` reaches a reader. Python's format specifications do the work; this
module only picks one per kind of number (no dependency needed for that).

    count(985000)      '985,000'
    compact(985000)    '985k'       (a progress line's rate)
    seconds(0.0126)    '0.013 s'    duration(15) '15 s', duration(5400) '1 h 30 min'
    plural(1, "job")   '1 job'      plural(2, "job") '2 jobs', plural(0, "job") '0 jobs'
    usd(0.008478)      '$0.0085'    money(0.008478000000000001) 0.008478 (JSON)
    decimal(1e6)       '1,000,000'  tidy(0.012600879399906258) 0.0126 (JSON)
"""

from __future__ import annotations

import math

__all__ = [
    "compact",
    "count",
    "decimal",
    "duration",
    "for_json",
    "money",
    "plural",
    "seconds",
    "tidy",
    "usd",
]


def count(n: float) -> str:
    """A whole number with thousands separators: ``985,000``."""
    return f"{n:,.0f}"


def plural(n: float, noun: str, nouns: str | None = None) -> str:
    """A count and its noun, singular for exactly one: ``1 job``, ``2 jobs``, ``1,000 images``
    (``nouns`` for an irregular plural: ``plural(2, "batch", "batches")``)."""
    return f"{count(n)} {noun if n == 1 else (nouns or noun + 's')}"


def compact(x: float) -> str:
    """A short number for a narrow line: ``985``, ``12.5k``, ``985k``, ``1.2M``."""
    if not math.isfinite(x):
        return "∞" if x > 0 else "-"
    for limit, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= limit:
            v = x / limit
            return f"{v:.1f}{unit}" if abs(v) < 10 else f"{v:.0f}{unit}"
    return f"{x:.0f}"


def decimal(x: float, digits: int = 3) -> str:
    """A plain number, never in e-notation: ``1,000,000``, ``2.5``, ``0.0126`` (``digits``
    significant digits below 1,000, whole above)."""
    if not math.isfinite(x):
        return "∞" if x > 0 else "-"
    if abs(x) >= 1000 or x == int(x):
        return f"{x:,.0f}"
    text = f"{tidy(x, digits):f}".rstrip("0").rstrip(".")
    return text or "0"


def seconds(x: float) -> str:
    """A short duration in seconds, 3 significant digits: ``0.013 s``, ``2.5 s``, ``125 s``."""
    return f"{decimal(x)} s"


def duration(x: float) -> str:
    """A duration in the unit that suits it: ``45 s``, ``12 min``, ``1 h 30 min``."""
    if x < 120:
        return f"{x:.0f} s" if x >= 10 else seconds(x)
    if x < 3600:
        return f"{x / 60:.0f} min"
    hours, rest = divmod(round(x / 60), 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def usd(x: float) -> str:
    """Dollars for people: 2 decimals from $1 on, 4 below (``$0.0085``, ``$12.40``)."""
    return f"${x:,.2f}" if abs(x) >= 1 else f"${x:.4f}"


def money(x: float | None) -> float | None:
    """An amount for JSON: rounded to a millionth of a dollar (a price of 0.0085 per image
    stays exact; float noise like 0.008478000000000001 goes)."""
    return None if x is None else round(float(x), 6)


def tidy(x: float | None, digits: int = 4) -> float | None:
    """A measurement for JSON, to ``digits`` significant digits (whole numbers kept whole)."""
    if x is None or not math.isfinite(x) or x == 0:
        return x
    if abs(x) >= 10**digits:
        return float(round(x))
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def for_json(value: object, digits: int = 10) -> object:
    """A document for JSON with every float to ``digits`` significant digits: binary noise
    (``0.008478000000000001``) goes, nothing measurable does (sums still add up to 1e-9)."""
    if isinstance(value, float):
        return tidy(value, digits)
    if isinstance(value, dict):
        return {k: for_json(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [for_json(v, digits) for v in value]
    return value
