"""The gate's pacing parts: aiolimiter leaky buckets whose rate changes in place, a rate
control paired with its bucket, and in-flight slots whose number changes while they are held.
(batchgen.limits.gate puts them together; the controls that move them are in autopilot.)"""

from __future__ import annotations

import math
from collections import deque

import anyio
from aiolimiter import AsyncLimiter

from batchgen.limits.autopilot import RateControl

BURST_S = 0.2  # our buckets' capacity, in seconds of the current rate


class _Bucket(AsyncLimiter):
    """aiolimiter's leaky bucket with a rate that changes in place.

    Replacing the bucket on every adjustment would forget how full it is and let a burst of
    its whole capacity through each time. aiolimiter (≥ 1.2) keeps its state in ``_level``
    and ``_rate_per_sec``; drain the bucket at the old rate first, then switch."""

    def set_rate(self, capacity: float, period: float) -> None:
        self._leak()
        self.max_rate = capacity
        self.time_period = period
        self._rate_per_sec = capacity / period
        self._level = min(self._level, capacity)
        self._wake_next()


def _shape(per_min: float) -> tuple[float, float]:
    per_s = per_min / 60.0
    capacity = max(1.0, per_s * BURST_S)
    return capacity, capacity / per_s


class Paced:
    """A rate control and the bucket that paces at its current rate (none while it is
    infinite: an images/min rate nobody has limited yet)."""

    def __init__(self, control: RateControl) -> None:
        self.control = control
        self._applied = control.current
        self._bucket = _Bucket(*_shape(control.current)) if math.isfinite(control.current) else None
        # one request collects its n image tokens before the next starts: tokens handed out
        # round-robin to many waiting requests would delay all of them
        self._order = anyio.Lock()

    def sync(self) -> None:
        value = self.control.current
        if math.isclose(value, self._applied, rel_tol=1e-4):
            return
        self._applied = value
        if not math.isfinite(value):
            self._bucket = None
        elif self._bucket is None:
            # a limit just found (a 429 said so): it was just used up, so the bucket starts
            # full, or what waited for it would leave together with the refused retry
            self._bucket = _Bucket(*_shape(value))
            self._bucket._level = self._bucket.max_rate
        else:
            self._bucket.set_rate(*_shape(value))

    def drain(self) -> None:
        """Take every token out: the next one comes one spacing from now."""
        bucket = self._bucket
        if bucket is not None:
            bucket._leak()
            bucket._level = bucket.max_rate

    async def acquire(self, amount: int) -> None:
        bucket = self._bucket
        if bucket is not None:
            if amount == 1:
                await bucket.acquire(1)
            else:
                # one token at a time, so capacity stays below a second's worth whatever n is
                async with self._order:
                    for _ in range(amount):
                        await bucket.acquire(1)
        self.control.sent(anyio.current_time(), amount)


class Slots:
    """A semaphore whose size changes while it is held (the adaptive in-flight limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[anyio.Event] = deque()

    async def acquire(self) -> int:
        """Take a slot; returns how many are out, this one included."""
        if self.used < self.limit and not self._waiters:
            self.used += 1
            return self.used
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release()  # handed a slot while being cancelled: pass it on
            else:
                self._waiters.remove(event)
            raise
        return self.used

    def release(self) -> None:
        self.used -= 1
        self._wake()

    def set_limit(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.used < self.limit:
            self.used += 1
            self._waiters.popleft().set()
