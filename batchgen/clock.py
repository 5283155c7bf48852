"""The clock seam.

Durations (the limiter, backoff, pauses, latencies) are measured on the event loop's clock:
the token buckets, anyio.sleep and tenacity's sleep all read it, so a test that runs the pool on a
virtual-time event loop (``batchgen.testing.run_virtual``) makes every wait exact and instant.
Wall-clock timestamps for the log come from a Clock, which tests can also replace
(``batchgen.testing.VirtualClock`` stamps rows on the virtual timeline).

Backoff waits between a job's attempts go through :func:`backoff_sleep`:
``batchgen.testing.set_testing(True)`` turns them off (they return at once and are counted),
as stamina's ``set_testing`` does, so a test of retries does not sit out their waits.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import anyio.lowlevel


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on the clock that durations are measured on (the event loop's)."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch (for timestamps in the log)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


def loop_time() -> float:
    """The event loop's time: asyncio's loop clock read directly where asyncio runs (the value
    ``anyio.current_time()`` returns there, without its backend lookup on every call: the
    limiter and the runner read this several times per request), anyio's on another backend.
    Raises RuntimeError outside an event loop, as anyio does."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # another backend (trio), or outside an event loop
        return anyio.current_time()
    if type(loop).time is _PLAIN_TIME:
        # asyncio's own clock is time.monotonic(): read it without the method's call (a loop
        # that brings its own clock, the tests' virtual one or uvloop's, is asked)
        return time.monotonic()
    return loop.time()


_PLAIN_TIME = asyncio.BaseEventLoop.time


class SystemClock:
    """The real clock: the event loop's time for durations, the system's for timestamps."""

    def monotonic(self) -> float:
        try:
            return loop_time()
        except RuntimeError:  # outside an event loop
            return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()


@dataclass
class BackoffSwitch:
    """Whether backoff waits are skipped (tests), and the waits skipped while they were."""

    off: bool = False
    waits: list[float] = field(default_factory=list)


BACKOFF = BackoffSwitch()
"""The process's switch; set through ``batchgen.testing.set_testing``."""


async def backoff_sleep(seconds: float, clock: Clock = SYSTEM_CLOCK) -> None:
    """Wait ``seconds`` between two attempts of a job, on ``clock``. With backoff waits
    turned off it records the wait and only yields to the loop once. A wait of zero (a 429's:
    the limiter holds the pool instead) is no backoff, and is not recorded."""
    if BACKOFF.off or seconds <= 0:
        if seconds > 0:
            BACKOFF.waits.append(seconds)
        await anyio.lowlevel.checkpoint()
        return
    await clock.sleep(seconds)
