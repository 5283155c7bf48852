"""The clock seam: the pool and the limiter read time only through a Clock, so tests inject one."""

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
