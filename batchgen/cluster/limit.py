"""The cluster's one limit per endpoint: the rate every shard's sends are scheduled under.

A named Ray actor (``LimitActor``) holds a ``SharedLimit`` and hands out *send times* in small
chunks: a shard asks for up to ``want`` permits and gets the offsets (seconds from now) at which
each may leave, spaced at the cluster's rate. Successive grants continue one schedule, so the
shards' sends interleave at the rate in force and no chunk is a burst; the actor is called once
per chunk (about ``horizon_s`` of the cluster's sends), not once per request.

What the shards' answers say comes back with their next call (a ``Report``): the announced
limit (``x-ratelimit-limit-requests``, a 429 text that states it), 429s and their Retry-After.

    rate:   slow start (x2 a second) until the first hint; an announced limit sets it to
            ``margin`` of that limit; a 429 cuts it (at most once a second) to ``cut`` of it,
            or lower, to ``margin`` of the rate the server accepted over the last second (the
            shards' sends less their 429s): the schedule runs a second or two ahead of the
            answers, so slow start's first 429 comes at two to four times a limit that states
            nothing, and a fixed cut would take seconds of 429s to get there; then it climbs
            again by ``climb`` a second, never past the announced limit or --rpm
    pause:  a 429's Retry-After moves the schedule's next free time past it

Pure and clock-free (every method takes ``now``), so its tests need neither Ray nor sleeps.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

# the share of an announced limit the cluster sends at: the shards' clocks and the network
# jitter the spacing a little, and a server's bucket holds about a second of the rate
MARGIN = 0.95
START_PER_S = 2.0  # requests/s before anything is known (slow start doubles it a second)
CUT = 0.7  # a 429 with no stated limit: the rate falls to this share at least
FLOOR_CUT = 0.4  # ... and to the accepted rate's margin, but never below this share at once
WINDOW_S = 1.0  # the shards' sends and 429s over this long say what the server accepts
CLIMB = 0.05  # after a cut: the rate grows this share a second
HORIZON_S = 0.5  # a grant covers about this much of the cluster's sends
# the schedule is handed out at most a grant per shard (and one more) ahead: each shard holds
# about one grant while the next is fetched, and a cut rate is in force within that time
MIN_PER_S = 1 / 60  # one request a minute: a rate the cuts never pass below
MIN_SAMPLE = 8  # sends in the window before their acceptance says anything


@dataclass(frozen=True, slots=True)
class Report:
    """What one shard saw since its last call."""

    ok: int = 0
    throttled: int = 0
    retry_after_s: float = 0.0  # the longest wait a 429 asked for
    announced_rpm: float | None = None  # the last requests/min limit a provider stated
    sent: int = 0  # permits used (requests sent) since the last call


@dataclass(frozen=True, slots=True)
class Grant:
    offsets: tuple[float, ...]  # seconds from the call's answer at which each permit may go
    wait_s: float  # nothing granted: ask again after this long
    per_minute: float  # the cluster's rate in force (for the progress line)


@dataclass(slots=True)
class SharedLimit:
    """The schedule and the rate control of one endpoint, for the whole cluster."""

    now: float
    rpm: float | None = None  # --rpm: a ceiling the rate never passes
    adapt: bool = True  # --no-adapt: the rate is --rpm, fixed
    rate: float = START_PER_S  # requests/s in force
    announced: float | None = None  # requests/s the provider stated
    slow_start: bool = True
    next_free: float = 0.0  # the schedule: when the next permit may go
    last_cut: float = -math.inf
    last_grow: float = 0.0
    calls: int = 0
    granted: int = 0
    throttled: int = 0
    cuts: int = 0
    shards: set[str] = field(default_factory=set)
    # (time, sent, throttled, ok) of the reports within WINDOW_S: what the server did lately
    window: deque[tuple[float, int, int, int]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.next_free = self.last_grow = self.now
        if self.rpm:
            self.rate = self.rpm / 60.0 if not self.adapt else min(self.rate, self.rpm / 60.0)
            if not self.adapt:
                self.slow_start = False

    @property
    def ceiling(self) -> float:
        """Requests/s the rate may reach: --rpm, and the announced limit's margin."""
        top = self.rpm / 60.0 if self.rpm else math.inf
        if self.announced is not None:
            top = min(top, self.announced * MARGIN)
        return top

    def report(self, now: float, seen: Report) -> None:
        self.throttled += seen.throttled
        self.window.append((now, seen.sent, seen.throttled, seen.ok))
        while self.window and self.window[0][0] < now - WINDOW_S:
            self.window.popleft()
        if not self.adapt:
            self._pause(now, seen)
            return
        if seen.announced_rpm is not None and seen.announced_rpm > 0:
            self.announced = seen.announced_rpm / 60.0
            self.rate = self.ceiling
            self.slow_start = False
        if seen.throttled:
            if now - self.last_cut >= 1.0:
                self.rate = max(MIN_PER_S, self._cut_to())
                self.last_cut = now
                self.cuts += 1
            self.slow_start = False
        self._pause(now, seen)

    def _cut_to(self) -> float:
        """The rate after a 429: ``CUT`` of it, or the margin of what the server accepted over
        the last second if that is lower (bounded below by ``FLOOR_CUT`` of it)."""
        sent = sum(s for _, s, _, _ in self.window)
        throttled = sum(t for _, _, t, _ in self.window)
        cut = self.rate * CUT
        if sent >= MIN_SAMPLE:
            accepted = max(0, sent - throttled) / WINDOW_S
            cut = min(cut, max(accepted * MARGIN, self.rate * FLOOR_CUT))
        return cut

    def _pause(self, now: float, seen: Report) -> None:
        if seen.throttled and seen.retry_after_s > 0:
            self.next_free = max(self.next_free, now + seen.retry_after_s)

    def _grow(self, now: float) -> None:
        dt, self.last_grow = max(0.0, now - self.last_grow), now
        if not self.adapt or dt == 0.0:
            return
        if self.slow_start:
            # x2 a second, and at most twice what the server answered over the last second:
            # with long answers slow start doubles once per answer (as TCP's does per round
            # trip), not once a second while nothing has come back to say it is too fast
            answered = sum(ok + throttled for _, _, throttled, ok in self.window) / WINDOW_S
            top = max(START_PER_S, 2.0 * answered, self.rate)
            self.rate = min(self.rate * 2.0**dt, top)
        elif now - self.last_cut >= 1.0:
            self.rate *= 1.0 + CLIMB * dt
        self.rate = max(MIN_PER_S, min(self.rate, self.ceiling))

    def grant_after(self, now: float, seen: Report, want: int, shard: str = "") -> Grant:
        """A shard's call: what it saw since its last one, then its next send times."""
        self.report(now, seen)
        return self.grant(now, want, shard)

    def grant(self, now: float, want: int, shard: str = "") -> Grant:
        """Up to ``want`` send times, continuing the cluster's schedule."""
        self.calls += 1
        self.shards.add(shard)
        self._grow(now)
        start = max(now, self.next_free)
        ahead = HORIZON_S * (len(self.shards) + 1)
        if start - now > ahead:
            return Grant((), start - now - ahead, self.per_minute)
        count = max(1, min(want, math.floor(self.rate * HORIZON_S)))
        spacing = 1.0 / self.rate
        offsets = tuple(start - now + i * spacing for i in range(count))
        self.next_free = start + count * spacing
        self.granted += count
        return Grant(offsets, 0.0, self.per_minute)

    @property
    def per_minute(self) -> float:
        return self.rate * 60.0

    def figures(self) -> dict[str, float | int | None]:
        """What the limit did, for run.json and the bench: calls per permit among them."""
        return {
            "per_minute": round(self.per_minute, 3),
            "announced_per_minute": None if self.announced is None else self.announced * 60,
            "calls": self.calls,
            "permits": self.granted,
            "calls_per_permit": round(self.calls / self.granted, 4) if self.granted else None,
            "throttled": self.throttled,
            "cuts": self.cuts,
            "shards": len(self.shards),
        }


class LimitActor:
    """The Ray actor around a SharedLimit (made remote by ``cluster.driver``): one per endpoint
    for the cluster, named after the run. A plain (threaded) actor runs its calls one at a
    time, so the schedule needs no lock."""

    def __init__(self, rpm: float | None, adapt: bool) -> None:

        self._clock = time.monotonic
        self.limit = SharedLimit(self._clock(), rpm=rpm, adapt=adapt)

    def grant(self, shard: str, want: int, seen: Report) -> Grant:
        return self.limit.grant_after(self._clock(), seen, want, shard)

    def figures(self) -> dict[str, float | int | None]:
        return self.limit.figures()
