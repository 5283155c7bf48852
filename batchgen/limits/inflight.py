"""The in-flight limit of the autopilot (batchgen.limits.autopilot): how many requests may be
out at once, found from how fast the provider answers and from its 429s for concurrency.

A gradient-style concurrency limiter, as in Netflix's: slow start while the slots are full and
the latency stays near its floor (one slot more per answer, so the slots double once a
latency), then one slot at a time; shrinks when the latency rises (a queue at the provider)
and drops just under the in-flight count of a request refused for concurrency; probing above
a refused count waits longer each time. It never holds fewer slots than a known rate needs
(``need``, rate × latency, set by the gate).

All time is the caller's (``now`` arguments), so tests drive this on a virtual clock. Nothing
here waits or touches the network.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

from batchgen.limits.tuning import AutopilotConfig


class InflightControl:
    """The adaptive in-flight limit (a gradient-style concurrency limiter)."""

    def __init__(self, cap: int, cfg: AutopilotConfig, now: float, *, fixed: bool = False) -> None:
        self.cap = max(1, int(cap))
        self.cfg = cfg
        self.fixed = fixed
        self.limit = float(self.cap if fixed else min(self.cap, cfg.start_inflight))
        self.slow_start = not fixed
        self.refused_at: int | None = None  # in-flight count of the last concurrency 429
        self.given = False  # the cap is the user's --concurrency: no latency cuts under it
        # in flight that a known rate limit needs (rate × latency): the rate bounds the load
        # then, so the limit may grow to this whatever the latency does, and never shrinks
        # under it for latency (a busy client's own queueing looks like the provider's)
        self.need = 0.0
        self.last_median: float | None = None
        self.calm = True  # the last window's latency was near its floor: no queue forming
        self._shrunk = 0  # latency cuts in a row
        self.losses = 0
        self.shrinks = 0
        self.peak = 0
        self._probe_wait = cfg.probe_wait_s
        self._probe_after = -math.inf
        self._window_start = now
        self._window: list[float] = []
        self._window_min = math.inf  # min(self._window), kept as answers come (not a scan each)
        self._full = False  # the slots were all taken at some point of this window
        self._medians: deque[tuple[float, float]] = deque()  # (time, window median)
        # the same medians kept sorted (bisect in, bisect out): the floor and its quartile are
        # an index, not a sort of the last minute's (thousands on an instant server) per window
        self._ranked: list[float] = []
        self._ok_hi: list[int] = [0, 0]  # highest in-flight of a success: this and last 10 s
        self._ok_epoch = now

    @property
    def ceiling(self) -> int:
        return self.cap if self.refused_at is None else max(1, self.refused_at - 1)

    @property
    def slots(self) -> int:
        """The limit, never under what a known rate needs (Little's law: rate × latency)."""
        if self.fixed:
            return max(1, int(self.limit))
        return max(1, int(max(self.limit, min(self.need, self.ceiling))))

    def sent_at(self, inflight: int, out: int | None = None) -> None:
        """A request left with ``inflight`` slots taken (``out`` of them sent, when known)."""
        self.peak = max(self.peak, inflight if out is None else out)
        if inflight >= self.slots:
            self._full = True

    def ok_high(self, now: float) -> int:
        self._roll(now)
        return max(self._ok_hi)

    def _roll(self, now: float) -> None:
        if now - self._ok_epoch >= 10.0:
            self._ok_hi = [0, self._ok_hi[0]] if now - self._ok_epoch < 20.0 else [0, 0]
            self._ok_epoch = now

    def on_ok(self, now: float, inflight: int, latency: float) -> None:
        if now - self._ok_epoch >= 10.0:
            self._roll(now)
        if inflight > self._ok_hi[0]:
            self._ok_hi[0] = inflight
        if self.fixed:  # --no-adapt: no window is measured (it was kept, and grew, per answer)
            return
        self._window.append(latency)
        if latency < self._window_min:
            self._window_min = latency
        if (
            self.slow_start
            and self._full
            # not slower than the latency tolerance allows over the floor (any, before one)
            and (not self._medians or latency <= self.cfg.latency_tolerance * self._ranked[0])
        ):
            # clocked by answers, as TCP's slow start by acknowledgements: one slot more per
            # answer while the slots are what holds the pool back (and the answer came as fast
            # as usual) doubles them once a latency
            self.limit = min(float(self.cap), self.limit + 1)
        span = now - self._window_start
        # a window of five answers and half an interval, or of a few latencies when answers
        # come in milliseconds (an instant server's limit moves in well under a second)
        least = min(self.cfg.interval_s * 0.5, 4 * self._window_min)
        if span < least - 1e-6 or len(self._window) < 5:
            return
        median = sorted(self._window)[len(self._window) // 2]
        self.last_median = median
        full = self._full
        self._window, self._full, self._window_start = [], False, now
        self._window_min = math.inf
        self._medians.append((now, median))
        bisect.insort(self._ranked, median)
        while self._medians and self._medians[0][0] < now - 60.0:
            del self._ranked[bisect.bisect_left(self._ranked, self._medians.popleft()[1])]
        # the lower quartile of the last minute's window medians (their minimum once there
        # are few): one lucky window of a wide-jitter provider is not its floor
        recent = self._ranked
        floor = recent[len(recent) // 4] if len(recent) >= 8 else recent[0]
        need = min(self.need, self.ceiling)
        # a provider that refuses past its cap of tasks does not queue them: with that cap
        # found, a slow window is jitter, not a queue
        queue = self.refused_at is None and not self.given
        self.calm = median <= self.cfg.latency_tolerance * floor
        if not self.calm and full and self.limit > need and queue:
            if self._shrunk >= 3:
                # three cuts and the latency did not come back: it is not our load (slower
                # prompts, a slower model); take it as the new floor
                self._medians.clear()
                self._medians.append((now, median))
                self._ranked[:] = [median]
                self._shrunk = 0
                return
            # latency grows with load: a queue is forming at the provider
            self.limit = max(1.0, need, self.limit * 0.9)
            self.slow_start = False
            self.shrinks += 1
            self._shrunk += 1
            return
        self._shrunk = 0
        if not full or (median > self.cfg.latency_tolerance * floor and self.limit >= need):
            return
        if self.slow_start:
            return  # grown per answer above
        nxt = self.limit + 1
        if self.refused_at is not None and nxt >= self.refused_at:
            if now < self._probe_after:
                return
            self._probe_after = now + self._probe_wait
        self.limit = min(float(self.cap), nxt)

    def on_refused(self, now: float, inflight: int) -> None:
        """A 429 for concurrency, for a request sent when ``inflight`` were out (itself too)."""
        self.losses += 1
        self.slow_start = False
        repeat = self.refused_at is not None and inflight <= self.refused_at
        self.refused_at = inflight if self.refused_at is None else min(self.refused_at, inflight)
        self.limit = max(1.0, min(self.limit, inflight - 1.0))
        if repeat or now >= self._probe_after:
            self._probe_wait = min(self.cfg.max_probe_wait_s, self._probe_wait * 2)
        self._probe_after = now + self._probe_wait

    def learned(self) -> int | None:
        if self.losses or self.shrinks:
            return self.slots
        return self.cap if self.fixed else None
