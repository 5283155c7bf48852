"""A virtual-time asyncio event loop, and a clock that reads it.

When nothing is ready to run, the loop jumps its clock to the next timer instead of blocking,
so ``anyio.sleep(60)`` takes no real time and every wait is measured exactly. Only for code
that does no real network I/O (a selector that would block is polled instead): the pool with
``batchgen.testing.MemoryProvider``, the limiter, anything on the event loop's clock.

    result = run_virtual(main)          # main: an async function of no arguments
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

__all__ = ["VIRTUAL_EPOCH", "VirtualClock", "VirtualTimeLoop", "run_virtual"]

T = TypeVar("T")

VIRTUAL_EPOCH = 1_767_225_600.0  # 2026-01-01 00:00 UTC: wall time at loop time 0


class _FastForwardSelector(selectors.SelectSelector):
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if not events and self.loop is not None:
            # Real clocks always move a little between iterations; code that schedules a timer
            # a rounding error ahead (a token bucket may) relies on that to make progress.
            self.loop.advance(max(timeout or 0.0, 1e-9))
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        selector = _FastForwardSelector()
        super().__init__(selector)
        selector.loop = self
        self._virtual_now = 1000.0

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


class VirtualClock:
    """A ``batchgen.clock.Clock`` on the running loop's time: on a virtual-time loop the log's
    timestamps follow the virtual timeline (``VIRTUAL_EPOCH`` + loop seconds)."""

    def __init__(self, epoch: float = VIRTUAL_EPOCH) -> None:
        self.epoch = epoch

    def monotonic(self) -> float:
        return anyio.current_time()

    def wall(self) -> float:
        return self.epoch + anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


def run_virtual(fn: Callable[[], Awaitable[T]], *args: Any) -> T:
    """Run ``fn(*args)`` under anyio on a virtual-time loop and return its result."""
    return anyio.run(
        fn, *args, backend="asyncio", backend_options={"loop_factory": VirtualTimeLoop}
    )
