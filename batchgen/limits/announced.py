"""What a limit the provider states does to the gate: the ``x-ratelimit-limit-*`` headers of
any answer, or a 429's text ("... on requests per min (RPM): Limit 1200"), move the rates to
it at once; a ``remaining-*`` of 0 pauses the pool for one unit of the provider's bucket.

The gate (batchgen.limits.gate.RateLimiter) calls :func:`observe` with every answer's headers
and :func:`announce` (its ``announce_limits``) with a 429's stated limits (batchgen.limits.
refusal). It is read through the :class:`Announced` protocol, so this module does not import
the gate back. Each answer repeats the limits: only one that moved is announced."""

from __future__ import annotations

from typing import Protocol

from batchgen.errors import parse_reset_duration
from batchgen.limits.autopilot import REQUESTS
from batchgen.limits.hints import header_hint
from batchgen.limits.pacing import Paced


class Announced(Protocol):
    """What is read and moved of the gate when the provider states a limit."""

    requests: Paced | None
    images: Paced | None
    adapt: bool

    def pause(self, seconds: float) -> float: ...


def observe(gate: Announced, headers: dict[str, str] | None, now: float) -> None:
    """Learn from ``x-ratelimit-{limit,remaining,reset}-{requests,images}`` on any answer."""
    if not headers:
        return
    limits, exhausted = header_hint(headers)
    if gate.adapt:
        for kind, stated in limits.items():
            paced = gate.requests if kind == REQUESTS else gate.images
            if paced is not None and paced.control.announced != stated:
                # (each answer repeats the limits: announce only when one moved)
                announce(gate, limits, now)
                break
    if exhausted is not None:
        # the provider's bucket is empty: wait for one unit of it, not for it to refill
        reset = parse_reset_duration(headers.get(f"x-ratelimit-reset-{exhausted}"))
        if reset:
            limit = limits.get(exhausted)
            gate.pause(min(reset, 60.0 / limit) if limit else reset)


def announce(
    gate: Announced, limits: dict[str, float], now: float, in_text: frozenset[str] = frozenset()
) -> set[str]:
    """Announced limits → the rates (``in_text``: the kinds a 429's text stated, not the
    headers); returns the kinds whose limit moved."""
    moved = set()
    for kind, limit in limits.items():
        paced = gate.requests if kind == REQUESTS else gate.images
        if paced is not None and paced.control.announced != limit:
            paced.control.announce(limit, now, "429 text" if kind in in_text else "headers")
            paced.sync()
            moved.add(kind)
    return moved
