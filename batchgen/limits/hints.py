"""What an answer says about the provider's limits: ``x-ratelimit-*`` headers and a 429's text
(:func:`read_hint`), and, for a 429 that says nothing, which limit it most likely was
(:func:`guess_kind`). Pure functions of what came back and of the controls' state; the gate
(batchgen.limits.gate) acts on them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from batchgen.limits.autopilot import CONCURRENCY, IMAGES, REQUESTS, RateControl
from batchgen.limits.inflight import InflightControl


@dataclass(frozen=True, slots=True)
class Hint:
    """What one answer says about the provider's limits."""

    limits: dict[str, float]  # announced limits per kind (per minute)
    exhausted: str | None  # the kind whose remaining is 0 (or that a 429 message names)
    concurrency: bool = False  # a 429 that names concurrent requests
    wait_s: float | None = None  # "Please try again in 12s" in a 429's text
    in_text: frozenset[str] = frozenset()  # the kinds whose limit only the 429's text states


_LIMIT_MSG = re.compile(
    r"on (requests|images|tokens) per min(?:ute)?[^:]*:\s*limit\s+([0-9][0-9,]*)", re.IGNORECASE
)
_WAIT_MSG = re.compile(r"try again in\s+([0-9]+(?:\.[0-9]+)?)\s*(ms|s)\b", re.IGNORECASE)
_KIND_MSG = re.compile(r"\b(requests|images|tokens) per min|\b(RPM|IPM|TPM)\b", re.IGNORECASE)
_CONCURRENT_MSG = re.compile(
    r"concurren|parallel|simultaneous|active (requests|tasks)", re.IGNORECASE
)
_KIND_OF = {
    "requests": REQUESTS,
    "rpm": REQUESTS,
    "images": IMAGES,
    "ipm": IMAGES,
    "tokens": REQUESTS,
    "tpm": REQUESTS,
}


_HEADER_NAMES = tuple(
    (kind, f"x-ratelimit-limit-{kind}", f"x-ratelimit-remaining-{kind}")
    for kind in (REQUESTS, IMAGES)
)


def read_hint(headers: dict[str, str] | None, message: str = "", code: str = "") -> Hint:
    """Announced limits and the exhausted kind from ``x-ratelimit-*`` headers and a 429 text.

    Nonsense is ignored: a limit of 0, a negative or non-finite one, or one no provider has
    (over a billion a minute) announces nothing."""
    limits, exhausted = header_hint(headers) if headers else ({}, None)
    if not message and not code:  # a success's headers: no text to search (each answer)
        return Hint(limits, exhausted)
    text = message or ""
    in_text: frozenset[str] = frozenset()
    if m := _LIMIT_MSG.search(text):
        kind = _KIND_OF[m.group(1).lower()]
        value = _number(m.group(2).replace(",", ""))
        stated = m.group(1).lower() != "tokens" and kind not in limits  # headers come first
        if stated and value is not None and 0 < value < 1e9:
            limits[kind] = value
            in_text = frozenset((kind,))
        exhausted = exhausted or kind
    elif m := _KIND_MSG.search(text):
        exhausted = exhausted or _KIND_OF[(m.group(1) or m.group(2)).lower()]
    concurrency = bool(_CONCURRENT_MSG.search(text) or _CONCURRENT_MSG.search(code or ""))
    wait = None
    if m := _WAIT_MSG.search(text):
        wait = float(m.group(1)) / (1000.0 if m.group(2).lower() == "ms" else 1.0)
        wait = wait if math.isfinite(wait) and wait < 86_400 else None
    return Hint(limits, exhausted, concurrency, wait, in_text)


def header_hint(headers: dict[str, str]) -> tuple[dict[str, float], str | None]:
    """``read_hint`` of an answer with no text: the announced limits and the exhausted kind.
    (The gate reads this on every answer, without building a Hint.)"""
    limits: dict[str, float] = {}
    exhausted: str | None = None
    for kind, limit_name, remaining_name in _HEADER_NAMES:
        limit = _number(headers.get(limit_name))
        if limit is not None and 0 < limit < 1e9:
            limits[kind] = limit
        if exhausted is None:
            remaining = _number(headers.get(remaining_name))
            if remaining is not None and remaining < 1:
                exhausted = kind
    return limits, exhausted


def guess_kind(
    rate_kind: str, rate: RateControl | None, inflight: InflightControl, sent_at: int, now: float
) -> str:
    """A 429 with no hint, for a request sent with ``sent_at`` out: concurrency when it was
    sent with every slot taken and more out than any recent success was sent with; otherwise
    ``rate_kind`` (requests/min, or images/min when jobs ask for several images)."""
    # Nothing tells the two apart before the rate was ever cut (a rate that is cut is the
    # safe guess: the first no-hint 429 of a run is the rate's), nor while sending at
    # about the rate a 429 came at before, or with about what that rate needs in flight
    if rate is not None and not rate.fixed_by_flag:
        w_max = rate.w_max
        if (
            w_max is None
            or rate.sent_rate(now, 2.0) >= 0.8 * w_max
            or 0 < 0.8 * inflight.need <= sent_at
        ):
            return rate_kind
    high = inflight.ok_high(now)
    full = sent_at >= inflight.slots
    return CONCURRENCY if full and high and sent_at > high else rate_kind


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
