"""The pool's gate: a pool-wide pause, a requests/min and an images/min bucket, and the in-flight
slots, each moved by the autopilot (batchgen.limits.autopilot) from what the provider answers.

    worker:  admit(n)    → an in-flight slot, the pause, 1 request token and n image tokens
                           (TokenBucket); the Ticket remembers how many were out at send
                           (try_admit(n): the same when nothing waits, else None)
             ... request ...
             on_ok(ticket, headers) / on_throttled(ticket, ...) / on_other(ticket)
             leave(ticket)

Both rates are leaky buckets (batchgen.limits.bucket) whose capacity is a fraction of a second's
worth (``burst_s``), not a minute's: a minute's bucket of 600 would let 600 requests out in the
first instant, and a provider that counts per second answers 429. Images are taken one at a
time, so a request with n=4 waits for 4 image tokens and the bucket never needs a capacity of n.

The user's --rpm/--ipm/--concurrency are ceilings the autopilot never passes; with
``adapt=False`` (--no-adapt) the rates and the slots stay exactly at the flags.

Modules the gate calls with itself (each reads it through a protocol) decide what a limit the
provider states does (batchgen.limits.announced), what a 429 does (refusal), and what it found
(found); the gate keeps the admission and the clock of the controls (``_tick``).

All time is the event loop's (``batchgen.clock.loop_time``), so tests run this on a virtual clock.
"""

from __future__ import annotations

import math
from typing import Any

import anyio

from batchgen.clock import loop_time
from batchgen.config import DEFAULT_CONCURRENCY_CAP as DEFAULT_CONCURRENCY_CAP
from batchgen.config import FIXED_CONCURRENCY as FIXED_CONCURRENCY
from batchgen.config import POOL_DEFAULTS
from batchgen.limits.announced import announce, observe
from batchgen.limits.autopilot import IMAGES, REQUESTS, AutopilotConfig, RateControl
from batchgen.limits.found import describe, learned
from batchgen.limits.hints import read_hint
from batchgen.limits.inflight import InflightControl
from batchgen.limits.pacing import BURST_S as BURST_S
from batchgen.limits.pacing import Paced, Slots, Ticket, loop_now
from batchgen.limits.refusal import rate_kind_of, react

# DEFAULT_CONCURRENCY_CAP (in flight at most when --concurrency is not given) and
# FIXED_CONCURRENCY (with --no-adapt) are batchgen.config's, the one table of defaults
# no Retry-After or reset holds the pool longer than this at once (--max-pause)
MAX_PAUSE_S: float = POOL_DEFAULTS["max_pause"]


class RateLimiter:
    """The pool's gate and the autopilot's seat."""

    def __init__(
        self,
        rpm: float | None = None,
        ipm: float | None = None,
        *,
        concurrency: int | None = None,
        adapt: bool = True,
        config: AutopilotConfig | None = None,
        max_pause_s: float = MAX_PAUSE_S,
    ) -> None:
        cfg = config or AutopilotConfig()
        now = loop_now()
        self.adapt = adapt
        self.max_pause_s = max_pause_s
        self.requests: Paced | None = None
        self.images: Paced | None = None
        if adapt or rpm:
            # the limits the user gave set the scale of the requests' slow start, not one
            # request a second (a ramp --no-adapt does not have: 2 s lost at the start of a
            # given-ipm run, 3 % of a 64 s bench run): a request carries at least one image,
            # so --ipm bounds the requests too; --concurrency lets that many out at once
            start = max(ipm or 0.0, 60.0 * (concurrency or 0))
            requests = RateControl(REQUESTS, rpm, cfg, now, start=start)
            self.requests = Paced(requests, now, slack=adapt)
        if adapt or ipm:
            images = RateControl(IMAGES, ipm, cfg, now)
            if not ipm:
                images.current = math.inf  # dormant until the provider limits images
            self.images = Paced(images, now, slack=adapt)
        cap = concurrency or (DEFAULT_CONCURRENCY_CAP if adapt else FIXED_CONCURRENCY)
        self.inflight = InflightControl(cap, cfg, now, fixed=not adapt)
        if adapt and concurrency:
            # a cap the user knows: start there, as a given rpm does, and hold it against
            # latency jitter (a 429 for concurrency still cuts it)
            self.inflight.limit = float(self.inflight.cap)
            self.inflight.slow_start = False
            self.inflight.given = True
        self._slots = Slots(self.inflight.slots)
        # the rates that exist (fixed at construction): the per-request ticks loop over these
        self._paced = tuple(p for p in (self.requests, self.images) if p is not None)
        # no rate moves before this (their tick's answer): the ticks until then are skipped
        self._due = -math.inf
        self.paused_until = 0.0
        self.paused_total_s = 0.0
        self.capped_pause: tuple[float, float] | None = None  # (asked, held) of the last cap
        self.throttled = 0
        self.throttled_since_progress = 0
        self.last_progress = now
        self._out = 0  # requests sent and not answered
        self._ticking = False  # a worker waits for a slot on a timer (before any answer)
        self._first_sent: float | None = None
        self._answered = False
        self._fastest = math.inf  # the quickest answer (a 429's round trip, or a success)
        self.max_n = 1
        self._sent_n = [0, 0]  # requests, images: the mean n of this run

    # -- the gate ----------------------------------------------------------------------------
    @property
    def concurrency_cap(self) -> int:
        return self.inflight.cap

    @property
    def slots_taken(self) -> int:
        """In-flight slots held now (requests out, and workers between a slot and sending)."""
        return self._slots.used

    async def acquire(self, n: int = 1) -> float:
        """Wait for the pause, then for one request token and n image tokens.

        Returns the seconds spent waiting (the log's ``wait_s``)."""
        start = loop_time()
        await self._wait_pause()
        if self.requests is not None:
            await self.requests.acquire(1)
        if self.images is not None:
            await self.images.acquire(n)
        return loop_time() - start

    async def admit(self, n: int = 1) -> Ticket:
        """Wait for an in-flight slot, then for the pause, then for one request token and n
        image tokens; the request leaves at once. Returns its Ticket.

        The slot comes first: a worker that took its tokens and then waited for a slot would
        hold them, and when the slots open every such worker would leave in the same instant
        (a burst past the bucket). Taken in this order, nothing leaves faster than the rate."""
        while True:
            await self._take_slot()
            try:
                await self._wait_pause()
                if self.requests is not None:
                    await self.requests.acquire(1)
                if self.images is not None:
                    await self.images.acquire(n)
                await self._wait_pause()
            except BaseException:
                self._slots.release()
                raise
            if self._out < self._slots.limit:
                return self._sent(n)
            # the limit fell while this worker waited for its tokens (a concurrency 429): the
            # tokens go unused (the rate only gets slower) and the slot is queued for again
            self._slots.release()

    def try_admit(self, n: int = 1) -> Ticket | None:
        """``admit`` when it would not wait: a slot free, no pause, the tokens there. The
        request's Ticket then, as ``admit`` returns it; None, with nothing taken, otherwise
        (the caller awaits ``admit``). Most requests pass here on a fast provider, without
        the cancel scope and the coroutine an awaited ``admit`` costs."""
        slots = self._slots
        limit = slots.limit
        if slots.used >= limit or slots.waiters or self._out >= limit:
            return None
        now = loop_time()
        if self.paused_until > now:
            return None
        requests, images = self.requests, self.images
        if images is not None and images.bucket is not None:
            # both rates paced: both ready before either is taken (several image tokens are
            # collected in turn, by admit)
            if n != 1 or (requests is not None and not requests.ready(now)):
                return None
            if not images.ready(now):
                return None
            if requests is not None:
                requests.take_now(1, now)
        elif requests is not None and not requests.try_take(now):
            return None  # (the usual case: only the requests paced, checked and taken in one)
        if images is not None:
            images.take_now(n, now)
        slots.used += 1
        return self._sent(n, now)

    async def _take_slot(self) -> None:
        while self.adapt and not self._answered and not self._ticking:
            # before any answer the in-flight limit grows with time (the latency is at least
            # the first request's age): one waiting worker looks again now and then
            self._ticking = True
            try:
                with anyio.move_on_after(0.25) as scope:
                    await self._slots.acquire()
            finally:
                self._ticking = False
            if not scope.cancelled_caught:
                return
            self._tick(loop_time())
        await self._slots.acquire()

    def _sent(self, n: int, now: float | None = None) -> Ticket:
        if now is None:
            now = loop_time()
        self._out = out = self._out + 1
        if n > self.max_n:
            self.max_n = n
        sent_n = self._sent_n
        sent_n[0] += 1
        sent_n[1] += n
        if self._first_sent is None:
            self._first_sent = now
        used = self._slots.used
        self.inflight.sent_at(used if used > out else out, out)
        if self.adapt:
            self._tick(now)
        return Ticket(out, now, n)

    def leave(self, ticket: Ticket) -> None:
        if self._out > 0:
            self._out -= 1
        self._slots.release()

    async def _wait_pause(self) -> None:
        # a deadline that a new pause may move on, not a condition an Event could signal
        while (delay := self.paused_until - loop_time()) > 0:  # noqa: ASYNC110
            await anyio.sleep(delay)

    def pause(self, seconds: float) -> float:
        """Hold every worker until ``seconds`` from now (capped); returns the pause held."""
        seconds = max(0.0, seconds)
        if seconds > self.max_pause_s:
            self.capped_pause = (seconds, self.max_pause_s)
            seconds = self.max_pause_s
        now = loop_time()
        until = now + seconds
        if until > self.paused_until:
            self.paused_total_s += until - max(now, self.paused_until)
            self.paused_until = until
        return seconds

    # -- what the provider said ---------------------------------------------------------------
    def on_ok(self, ticket: Ticket | None, headers: dict[str, str] | None) -> None:
        now = loop_time()
        self.last_progress = now
        self.throttled_since_progress = 0
        if headers:
            observe(self, headers, now)
        if ticket is not None:
            self._answer(now, ticket, ok=True)
            self.inflight.on_ok(now, ticket.inflight, now - ticket.sent_at)
        if self.adapt:
            self._tick(now)

    def on_other(self) -> None:
        """An answer that was neither a success nor a 429: the run is progressing."""
        self.last_progress = loop_time()
        self.throttled_since_progress = 0

    def on_throttled(
        self,
        ticket: Ticket | None,
        retry_after_s: float | None,
        headers: dict[str, str] | None = None,
        message: str = "",
        code: str = "",
    ) -> float:
        """A 429 for rate or concurrency: learn from it, cut the right control, and pause the
        pool for the hint — never shorter than one request's spacing at the cut rate
        (batchgen.limits.refusal). Returns the pause held (0 for a concurrency 429: the slots
        hold the pool back)."""
        now = loop_time()
        self.throttled += 1
        self.throttled_since_progress += 1
        hint = read_hint(headers, message, code)
        if ticket is not None:
            self._answer(now, ticket, ok=False)
        return react(self, now, ticket, retry_after_s, hint)

    def _answer(self, now: float, ticket: Ticket, *, ok: bool) -> None:
        """An answer came back: how fast answers come clocks the rates' slow start."""
        latency = now - ticket.sent_at
        if ok and self.adapt:
            for paced in self._paced:
                control = paced.control
                # (on_answer moves only a rate in slow start; current is never NaN)
                if control.slow_start and control.current < math.inf:
                    control.on_answer(latency)
                    self._due = -math.inf  # the tick that follows syncs the bucket
        if latency < self._fastest:
            self._fastest = latency
            step = min(
                self.requests.control.cfg.interval_s if self.requests else 1.0,
                max(0.05, 2 * latency),
            )
            for paced in self._paced:
                paced.control.step_s = step
            self._due = -math.inf  # a shorter step: the rates may move sooner
        if ok and not self._answered:
            self._answered = True
            # what is out already was let out by the rate: the first answer keeps it
            keep = min(self.inflight.ceiling, self._out)
            self.inflight.limit = max(self.inflight.limit, float(keep))

    def observe_headers(self, headers: dict[str, str] | None) -> None:
        """Learn from ``x-ratelimit-{limit,remaining,reset}-{requests,images}`` on any answer
        (batchgen.limits.announced)."""
        if headers:
            observe(self, headers, loop_time())

    def announce_limits(
        self, limits: dict[str, float], now: float, in_text: frozenset[str] = frozenset()
    ) -> set[str]:
        """Announced limits → the rates (``in_text``: the kinds a 429's text stated, not the
        headers); returns the kinds whose limit moved (batchgen.limits.announced)."""
        return announce(self, limits, now, in_text)

    def set_slot_limit(self, slots: int) -> None:
        """The in-flight slots now (a concurrency 429's cut)."""
        self._slots.set_limit(slots)

    def _guess_kind(self, ticket: Ticket | None, now: float) -> str:
        """A 429 with no hint: which limit it most likely was (refusal.rate_kind_of)."""
        return rate_kind_of(self, ticket, now)

    def _tick(self, now: float) -> None:
        """After each send and answer: the rates that are due move, and the in-flight limit
        follows what they need (one method: it runs twice a request)."""
        if not self.adapt:
            return
        if now >= self._due:
            due = math.inf
            for paced in self._paced:
                moves = paced.control.tick(now)
                paced.sync()
                if moves < due:
                    due = moves
            self._due = due
        inflight = self.inflight
        # In flight the rates in force need (Little's law: rate × latency, 25 % over).
        # Before any answer the latency is at least the age of the first request. A rate still
        # in slow start (climbing until the first 429) counts while the latency stays near its
        # floor: the rate's ramp leads and the in-flight limit follows it, or, once answers
        # come, the limit would grow one slot per answer, doubling once per latency (a minute at
        # 15 s, while the rate waits for it). When the latency rises (a queue at the provider),
        # only a rate bounded by a hint (a flag, an announced limit, a 429) sets it.
        need = 0.0
        if self._first_sent is not None:
            latency = inflight.last_median
            age = now - self._first_sent
            if latency is None or age < 2 * latency:
                # no window of answers yet, or only the first ones: those are the fast answers
                # (the slow ones are still out), so the latency is at least the first one's age
                latency = max(latency or 0.0, age)
            per_s = 0.0
            mean_n = self._sent_n[1] / max(1, self._sent_n[0])
            for pacing, per_request in ((self.requests, 1.0), (self.images, mean_n)):
                if pacing is None:
                    continue
                control = pacing.control
                current = control.current
                if current == math.inf:  # (never NaN)
                    continue
                if self._answered and control.slow_start and not inflight.calm:
                    continue  # a queue and no bound: the in-flight limit finds its own way
                rate = current / 60.0 / per_request
                per_s = rate if per_s == 0.0 else min(per_s, rate)
            need = per_s * latency * 1.25
        inflight.need = need
        slots = inflight.slots  # a property: read once
        if self._slots.limit != slots:
            self._slots.set_limit(slots)

    # -- what it found ------------------------------------------------------------------------
    def stalled_s(self) -> float:
        return loop_time() - self.last_progress

    def describe(self) -> str:
        """The progress line's part: rates, slots, a pause."""
        return describe(self)

    def learned(self) -> dict[str, Any]:
        """What the autopilot found, for run.json and the report."""
        return learned(self)
