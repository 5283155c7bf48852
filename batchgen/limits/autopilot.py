"""The autopilot: find the provider's limits from its answers and hold the pool just under them.

Three controls, each adapting from the first request, each capped by the user's flag:
* a requests/min and an images/min rate (:class:`RateControl`): slow start (×2 a second while
  the rate is used and no 429 comes), then, after the first 429, a cubic-like cycle around the
  rate at which the provider refused (``w_max``): cut to ``decrease`` × that rate, close the gap
  quickly, hold just under it, and only after ``hold_s`` clean seconds probe above it (slowly
  at first, doubling every ``probe_double_s`` while it stays clean, so a limit that rises, or
  a ceiling set too low by a few stray 429s, is left behind within a minute);
* an in-flight limit (:class:`InflightControl`, in batchgen.limits.inflight): slow start while
  the slots are full and the latency stays near its floor, then one slot at a time; shrinks when
  latency rises (a queue at the provider, as in Netflix's gradient limiters) and drops just under
  the in-flight count of a request refused for concurrency; probing above a refused count waits
  longer each time.

Signals, in order of trust: ``x-ratelimit-limit/remaining-*`` headers (any answer) and a 429
message that states its limit ("... on requests per min (RPM): Limit 1200") set a ceiling the
rate jumps to; a 429 says which limit it hit through ``remaining-*`` = 0 or its message; a 429
with no hint at all is told apart by the in-flight count it was sent at (all slots full, and
more than any recent success was sent at → concurrency; otherwise → requests/min).

All time is the caller's (``now`` arguments, the event loop's clock), so tests drive this on
a virtual clock. Nothing here waits or touches the network.
"""

from __future__ import annotations

import bisect
import math

from batchgen.limits.inflight import InflightControl as InflightControl
from batchgen.limits.tuning import AutopilotConfig as AutopilotConfig

REQUESTS, IMAGES, CONCURRENCY = "requests", "images", "concurrency"
_MIN_SAMPLE = 8  # units sent in the window before their rate says anything

# the sources of a limit that is known, not guessed: a flag, or the provider's statement
STATED = ("flag", "headers", "429 text")


class RateControl:
    """One adaptive rate, per minute. ``current`` is what the pool paces at."""

    def __init__(
        self,
        kind: str,
        cap: float | None,
        cfg: AutopilotConfig,
        now: float,
        *,
        start: float | None = None,
    ) -> None:
        """``start``: where slow start begins when no cap is given (``cfg.start_rpm`` when
        None or lower), e.g. the requests a given images/min already bounds."""
        self.kind = kind
        self.cap = float(cap) if cap else math.inf
        self.cfg = cfg
        self.announced: float | None = None
        self.w_max: float | None = float(cap) if cap else None
        self.slow_start = cap is None
        self.current = float(cap) if cap else max(cfg.start_rpm, start or 0.0)
        self.source = "flag" if cap else None
        # slow start doubles once a step: the gate sets it from how fast answers come (an
        # instant server's rate doubles every few tens of ms, a slow one's once a second)
        self.step_s = cfg.interval_s
        self.losses = 0
        self.refused = False  # a 429 came for this kind
        self._last_loss = -math.inf
        self._clean_since = now
        self._last_move = now
        # the last seconds' sends: their times, and the running total sent before each, so
        # the total over any recent window is one bisect and a subtraction (a sum over the
        # whole window on every tick was ~4.5 % of the workers' time on an instant server)
        self._times: list[float] = []
        self._before: list[int] = []
        self._head = 0  # entries before it are older than the longest window
        self._total = 0  # sent since the start
        self._used = True  # the rate was used at the last tick (slow start grows only then)

    @property
    def fixed_by_flag(self) -> bool:
        """The rate is the user's flag and nothing cut it (w_max is the flag, not a 429's)."""
        return self.source == "flag" and self.losses == 0

    @property
    def ceiling(self) -> float:
        if self.announced is None:
            return self.cap
        if self.cap <= self.announced and not self.refused:
            # the user's flag, at or under what the provider states and not refused at:
            # theirs to hold, as --no-adapt does (the headroom is for a limit the provider
            # states, or a flag it refused at; the gate's time slack, pacing.slack_s, keeps a
            # tiny limit's requests apart against arrival jitter)
            return self.cap
        return min(self.cap, self.announced * self.cfg.headroom)

    def mark_refused(self) -> None:
        """A 429 for this kind: the headroom holds from now on, under a flag too. (A 429 that
        its stated limit explains is not cut for (refusal.react); this is all it does.)"""
        self.refused = True
        self.current = min(self.current, self.ceiling)

    def sent(self, now: float, amount: int) -> None:
        times = self._times
        if times and now < times[-1]:  # out of order (a test's made-up history): keep sorted
            i = bisect.bisect_right(times, now)
            times.insert(i, now)
            self._before.insert(i, self._before[i])
            for j in range(i + 1, len(times)):
                self._before[j] += amount
            if i < self._head:
                self._head += 1
        else:
            times.append(now)
            self._before.append(self._total)
        self._total += amount
        self._head = bisect.bisect_left(times, now - 4 * self.cfg.interval_s, self._head)
        if self._head > 1024 and self._head * 2 > len(times):  # drop the expired half
            del times[: self._head], self._before[: self._head]
            self._head = 0

    def sent_rate(self, now: float, window: float) -> float:
        """Per minute, over the last ``window`` seconds."""
        i = bisect.bisect_left(self._times, now - window, self._head)
        total = self._total - self._before[i] if i < len(self._times) else 0
        return total * 60.0 / window

    def announce(self, limit: float, now: float, where: str = "headers") -> None:
        """The provider stated its limit (in ``where``: "headers", or "429 text" for a 429's
        message): aim just under it at once."""
        old = self.ceiling
        self.announced = limit
        new = self.ceiling
        if self.source != "flag" or new < self.cap:
            self.source = where
        if self.slow_start:
            self.slow_start = False
            self.current = new
            self.w_max = new
        elif not math.isclose(new, old, rel_tol=1e-3) and math.isfinite(old):
            # a limit that moved: move with it, keeping our share of it
            self.current *= new / old
            self.w_max = (self.w_max or old) * new / old
        self.current = min(self.current, new)

    def on_loss(self, now: float) -> bool:
        """A 429 for this kind. Returns True when it cut (the first of an episode)."""
        self.refused = True
        if now - self._last_loss < self.cfg.cooldown_s:
            return False
        self._last_loss = now
        self._clean_since = now
        self.losses += 1
        if self.source in (None, "flag") and self.announced is None:
            self.source = "429" if self.source is None else self.source
        window = 2 * self.cfg.interval_s
        sent = self.sent_rate(now, window)
        # the rate actually sent, when enough was sent to measure it (a few requests in two
        # seconds measure nothing: a provider can refuse those at any rate)
        measured = sent * window / 60.0 >= _MIN_SAMPLE
        base = min(self.current, sent) if measured else self.current
        if self.slow_start:
            self.slow_start = False
            self.w_max = base
            self.current = base * self.cfg.ss_decrease
        else:
            self.w_max = base
            self.current = base * self.cfg.decrease
        self.current = max(self.cfg.floor_rpm, min(self.current, self.ceiling))
        return True

    def tick(self, now: float) -> float:
        """Called as requests leave and answers come in; moves the rate at most once an
        interval (once a step in slow start). Returns the time before which it will not move
        again (unless ``step_s`` is lowered), so a caller may skip the calls until then."""
        self._move(now)
        # a hair early: a float sum may round past the difference _move compares
        return self._last_move + (self.step_s if self.slow_start else self.cfg.interval_s) - 1e-9

    def _move(self, now: float) -> None:
        step = self.step_s if self.slow_start else self.cfg.interval_s
        if now - self._last_move < step:
            return
        elapsed = now - self._last_move
        self._last_move = now
        if now - self._last_loss < self.cfg.cooldown_s:
            return
        ceiling = self.ceiling
        # over at least two of the rate's spacings: a slow rate's sends are seconds apart
        window = min(
            4 * self.cfg.interval_s,
            max(min(elapsed, 2 * self.cfg.interval_s), 120.0 / max(self.current, 1e-9)),
        )
        used = self.sent_rate(now, window) >= 0.5 * self.current
        self._used = used
        if self.slow_start:
            if used:
                self.current = min(ceiling, self.current * self.cfg.ss_factor)
            return
        w_max = self.w_max if self.w_max is not None else ceiling
        if not math.isfinite(w_max):
            return
        target = min(ceiling, w_max * self.cfg.plateau)
        if self.current < target:
            step = max(self.cfg.approach * (target - self.current), 0.002 * w_max)
            self.current = min(target, self.current + step)
        elif used and now - self._clean_since >= self.cfg.hold_s and self.current < ceiling:
            doublings = (now - self._clean_since - self.cfg.hold_s) / self.cfg.probe_double_s
            step = self.cfg.probe * w_max * 2.0 ** min(doublings, 6.0)
            self.current = min(ceiling, self.current + step)
            if self.current > w_max:
                self.w_max = self.current / self.cfg.plateau  # passed cleanly: a new plateau

    def on_answer(self, latency: float) -> None:
        """A clean answer in slow start: the rate grows by one request per latency (as TCP's
        window grows by one segment per acknowledgement), at most doubling per answer. An
        instant server's rate doubles per answer; a 15 s one's hardly moves this way."""
        if not self.slow_start or not self._used:
            return
        step = min(self.current, 60.0 / max(latency, 1e-3))
        self.current = min(self.ceiling, self.current + step)

    @property
    def known(self) -> bool:
        """A real limit, not a guess: a flag, an announced limit, or two cuts at it."""
        return (
            not self.slow_start
            and (self.source in STATED or self.losses >= 2)
            and math.isfinite(self.current)
        )

    def learned(self) -> float | None:
        """The rate the provider sustains, as far as this run found out."""
        if self.announced is not None:
            return min(self.cap, self.announced)
        if self.losses >= 2 and self.w_max is not None:
            # one 429 proves little (a provider may throw a few at any rate); two cuts at
            # the same ceiling do
            return min(self.cap, self.w_max * self.cfg.plateau)
        return None if math.isinf(self.cap) else self.cap
