"""What a 429 does to the gate: which control it cuts, and how long the pool then holds.

The gate (batchgen.limits.gate.RateLimiter) counts the refusal, reads its hint and books the
answer, then calls :func:`react`; this module decides the rest from the hint and the
controls' state. It reads the gate through the :class:`Refused` protocol, so it does not
import the gate back."""

from __future__ import annotations

import math
from typing import Protocol

from batchgen.limits.autopilot import CONCURRENCY, IMAGES, REQUESTS
from batchgen.limits.hints import Hint, guess_kind
from batchgen.limits.inflight import InflightControl
from batchgen.limits.pacing import Paced, Ticket


class Refused(Protocol):
    """What is read and moved of the gate on a 429."""

    requests: Paced | None
    images: Paced | None
    inflight: InflightControl
    adapt: bool
    max_n: int  # the most images a request of this run asked for

    def pause(self, seconds: float) -> float: ...

    def announce_limits(
        self, limits: dict[str, float], now: float, in_text: frozenset[str] = ...
    ) -> set[str]: ...

    def set_slot_limit(self, slots: int) -> None: ...


def react(
    gate: Refused, now: float, ticket: Ticket | None, retry_after_s: float | None, hint: Hint
) -> float:
    """Cut the control the 429 was for and pause the pool for the hint — never shorter than
    one request's spacing at the cut rate. Returns the pause held (0 for a concurrency 429:
    the slots hold the pool back)."""
    kind = CONCURRENCY if hint.concurrency else hint.exhausted
    if gate.adapt:
        moved = gate.announce_limits(hint.limits, now, hint.in_text)
        if kind is None:
            kind = rate_kind_of(gate, ticket, now)
        if kind == CONCURRENCY:
            if ticket is not None:
                inflight = gate.inflight
                # the slots in force (need included) are what the cut starts from
                inflight.limit = max(inflight.limit, float(inflight.slots))
                inflight.on_refused(now, ticket.inflight)
                gate.set_slot_limit(inflight.slots)
        else:
            paced = gate.images if kind == IMAGES else gate.requests
            # a 429 stating a new limit of its kind is explained by it: the rate moved
            # to it already, a cut on top would run under it
            if paced is not None:
                if kind in moved:
                    paced.control.mark_refused()
                    paced.sync()
                elif paced.control.on_loss(now):
                    paced.sync()
    if kind == CONCURRENCY and retry_after_s is None:
        return 0.0
    spacing = spacing_s(gate, ticket.n if ticket is not None else 1)
    # no Retry-After header: OpenAI's text says it ("Please try again in 12s")
    wait = retry_after_s if retry_after_s is not None else (hint.wait_s or 0.0)
    if gate.adapt and math.isfinite(wait) and wait >= 1.0 and wait == int(wait):
        # whole seconds (RFC 9110's Retry-After) are rounded up: "1" may mean 50 ms. The
        # rate just cut spaces the requests; hold the pool only for what is surely left
        wait -= 1.0
    if wait > spacing or not gate.adapt:
        return gate.pause(max(wait, spacing))
    # no longer a wait than one request's spacing: the provider's bucket is empty, so
    # ours is made so too. The next request leaves one spacing from now; a pool-wide
    # pause would hold back workers that took their tokens already and then let them
    # all out together when it ends
    for paced in (gate.requests, gate.images):
        if paced is not None:
            paced.drain()
    return spacing


def spacing_s(gate: Refused, n: int) -> float:
    """Seconds between requests (of n images) at the rates in force."""
    spacing = 0.0
    if gate.requests is not None and math.isfinite(gate.requests.control.current):
        spacing = 60.0 / gate.requests.control.current
    if gate.images is not None and math.isfinite(gate.images.control.current):
        spacing = max(spacing, 60.0 * n / gate.images.control.current)
    return spacing


def rate_kind_of(gate: Refused, ticket: Ticket | None, now: float) -> str:
    """A 429 with no hint: which limit it most likely was (hints.guess_kind)."""
    # with jobs of several n, count images: pacing images holds an images/min limit, and a
    # requests/min one too at the mean n
    rate_kind = IMAGES if gate.max_n > 1 and gate.images is not None else REQUESTS
    if ticket is None or gate.inflight.fixed:
        return rate_kind
    paced = gate.images if rate_kind == IMAGES else gate.requests
    rate = paced.control if paced is not None else None
    return guess_kind(rate_kind, rate, gate.inflight, ticket.inflight, now)
