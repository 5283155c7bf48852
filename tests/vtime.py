"""A virtual-time asyncio event loop: the injected clock for limiter and pool tests.

When nothing is ready to run, the loop jumps its clock to the next timer instead of blocking,
so `anyio.sleep(60)` takes no real time and every wait is measured exactly. Only for code that
does no real I/O (a selector that would block is polled instead).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


class _FastForwardSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if not events and self.loop is not None:
            # Real clocks always move a little between iterations; code that schedules a timer
            # a rounding error ahead (aiolimiter does) relies on that to make progress.
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


def run_virtual(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` under anyio on a virtual-time loop and return its result."""
    return anyio.run(fn, backend="asyncio", backend_options={"loop_factory": VirtualTimeLoop})
