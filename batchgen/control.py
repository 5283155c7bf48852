"""What the pool, its workers and the CLI share: the settings, the row context, the sink
protocol, and the run's stop switch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio

from batchgen.errors import ErrorClass


class Sink(Protocol):
    def append(self, row: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class PoolSettings:
    concurrency: int = 16
    timeout: float = 120.0
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    grace_s: float = 30.0
    # a run that gets nothing but 429s for this long stops (exit 3), its jobs pending
    stall_timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class RowContext:
    """What every row of this session shares."""

    run_id: str
    session: int
    provider: str
    images_dir: Path
    checker: Any = None  # batchgen.checks.ingest.IngestChecker: measures each saved image
    # a regeneration round's file name tag ("~r2"): new images never overwrite old ones
    image_tag: str = ""


class RunControl:
    """The run's stop switch, shared by the pool, its workers and the signal handler.

    ``stop`` ends dispatching (no new request is sent; requests in flight finish); ``cancel``
    also cancels the requests in flight (set by the pool to its task group's cancel scope)."""

    def __init__(self) -> None:
        self.reason: ErrorClass | None = None
        self.message = ""
        self._cancel: Any = None
        # waits that a stop should cut short (limiter, backoff): a stop must not wait them out
        self._waits: set[anyio.CancelScope] = set()

    @property
    def stopping(self) -> bool:
        return self.reason is not None

    def stop(self, reason: ErrorClass, message: str = "") -> None:
        if self.reason is None:
            self.reason = reason
            self.message = message
        for scope in list(self._waits):
            scope.cancel()

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A wait that ends early (silently) when the run stops; the caller checks ``stopping``."""
        scope = anyio.CancelScope()
        if self.stopping:
            scope.cancel()
        self._waits.add(scope)
        try:
            with scope:
                yield
        finally:
            self._waits.discard(scope)

    def cancel(self) -> None:
        self.stop(ErrorClass.CANCELLED, "cancelled")
        if self._cancel is not None:
            self._cancel()
