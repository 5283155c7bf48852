"""Support for tests and benchmarks, of batchgen and of code built on it: nothing here is used
by a run.

- ``set_testing`` / ``testing()``: backoff waits between a job's attempts off (and counted),
  as stamina's ``set_testing`` does, so a test of retries does not sit out real backoff.
- ``MemoryProvider`` (``batchgen.testing.memory``): a provider that answers from a script.
- ``run_virtual`` / ``VirtualClock`` (``batchgen.testing.vtime``): an event loop whose clock
  jumps to the next timer, so pacing and backoff are measured exactly in no real time.
- ``synthetic`` writes large, realistic run logs without sending a request (the analysis and
  report benchmarks read a million rows from it); import it by its module name.

    with batchgen.testing.testing() as waits:
        ...                      # run jobs that fail and are retried
    assert waits.count == 2      # two backoff waits were asked for, none was slept
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from batchgen.clock import BACKOFF
from batchgen.testing.memory import PNG_1X1, Answer, Call, MemoryProvider
from batchgen.testing.vtime import VIRTUAL_EPOCH, VirtualClock, VirtualTimeLoop, run_virtual

__all__ = [
    "PNG_1X1",
    "VIRTUAL_EPOCH",
    "Answer",
    "BackoffWaits",
    "Call",
    "MemoryProvider",
    "VirtualClock",
    "VirtualTimeLoop",
    "is_testing",
    "run_virtual",
    "set_testing",
    "testing",
]


class BackoffWaits:
    """The backoff waits asked for (and skipped) since testing was switched on."""

    def __init__(self, start: int) -> None:
        self._start = start

    @property
    def seconds(self) -> list[float]:
        return BACKOFF.waits[self._start :]

    @property
    def count(self) -> int:
        return len(self.seconds)

    @property
    def total_s(self) -> float:
        return sum(self.seconds)


def set_testing(on: bool) -> None:
    """Turn backoff waits off (``True``) or back on. While off, every wait is recorded in
    ``BackoffWaits`` and returns at once; the retry decisions themselves are unchanged."""
    BACKOFF.off = on
    if on:
        BACKOFF.waits.clear()


def is_testing() -> bool:
    return BACKOFF.off


@contextlib.contextmanager
def testing(on: bool = True) -> Iterator[BackoffWaits]:
    """``set_testing(on)`` for the block, then back to what it was."""
    before = BACKOFF.off
    BACKOFF.off = on
    waits = BackoffWaits(len(BACKOFF.waits))
    try:
        yield waits
    finally:
        BACKOFF.off = before
