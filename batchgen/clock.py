"""The clock seam.

Durations (the limiter, backoff, pauses) are measured on the event loop's clock: aiolimiter,
anyio.sleep and tenacity's sleep all read it, so a test that runs the pool on a virtual-time
event loop (tests/vtime.py) makes every wait exact and instant. Wall-clock timestamps for the
log come from a Clock, which tests can also replace."""

from __future__ import annotations

import time
from typing import Protocol

import anyio


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def wall(self) -> float:
        """Seconds since the epoch (for timestamps in the log)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()
