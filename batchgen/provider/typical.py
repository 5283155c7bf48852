"""What each image model's latency usually is: the median seconds of one request, and the
spread of its log (lognormal jitter).

From the providers' documentation and reported figures, rounded: OpenAI says gpt-image-1
requests "can take up to 2 minutes" for complex prompts; typical 1024x1024 answers take ~10–20
s at ``low``, ~20–40 s at ``medium``, ~40–80 s at ``high`` quality, non-square sizes ~30 %
longer; dall-e-3 ~10 s (``hd`` slower), dall-e-2 a few seconds; the Gemini image models and
FLUX endpoints a few seconds. The simulator draws its latencies from this table
(``latency_profile="models"``) and the report judges a run's latency against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Typical:
    median_s: float
    sigma: float  # of log(latency)
    source: str  # what the figure is, for the report


_GPT = {"low": 12.0, "medium": 25.0, "high": 50.0}
_GPT_FAST = {"low": 6.0, "medium": 12.0, "high": 25.0}  # the -mini models
_SIZE_FACTOR = 1.3  # a non-square GPT image


def typical_latency(
    model: str | None, quality: str | None = None, size: str | None = None
) -> Typical:
    """The usual latency of one request of ``model`` at ``quality`` and ``size``."""
    name = (model or "").lower()
    q = (quality or "").lower()
    if name.startswith("gpt-image"):
        table = _GPT_FAST if "mini" in name else _GPT
        level = q if q in table else "medium"  # auto and unknown: medium
        median = table[level]
        square = size in (None, "", "auto", "1024x1024")
        if not square:
            median *= _SIZE_FACTOR
        what = f"{model} at {level} quality" + ("" if square else f", {size}")
        return Typical(median, 0.35, what)
    if name == "dall-e-3":
        return Typical(15.0 if q == "hd" else 10.0, 0.25, f"dall-e-3 {q or 'standard'}")
    if name == "dall-e-2":
        return Typical(4.0, 0.3, "dall-e-2")
    if "flux" in name:
        return Typical(4.0, 0.35, f"{model} (FLUX endpoints)")
    if "gemini" in name or "imagen" in name:
        return Typical(6.0, 0.35, f"{model} (Gemini image models)")
    return Typical(5.0, 0.4, f"{model or 'an unknown model'} (a few seconds, not known)")


def mean_of(typical: Typical) -> float:
    """The mean of the lognormal around ``typical`` (above its median): what one request takes
    on average, the quote's latency for a run on the simulator's model latencies."""

    return typical.median_s * math.exp(typical.sigma**2 / 2)


def p95_of(typical: Typical) -> float:
    """The 95th percentile of the lognormal around ``typical``."""

    return typical.median_s * math.exp(1.645 * typical.sigma)
