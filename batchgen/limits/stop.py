"""The run's stop switch: a budget cap, an auth or quota error, a signal or a stall ends
dispatching through it, and every wait that should end early (a limiter pause, a backoff) is
registered with it. Shared by the limiter, the router, the pool and the session."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import anyio

from batchgen.errors import ErrorClass


class RunControl:
    """The run's stop switch, shared by the pool, its workers and the signal handler.

    ``stop`` ends dispatching (no new request is sent; requests in flight finish); ``cancel``
    also cancels the requests in flight (the pool's task group, attached with ``cancels``)."""

    def __init__(self) -> None:
        # reason is not None, kept as a plain attribute: every worker reads it several times a
        # request (a property was a call each time)
        self.stopping = False
        self._reason: ErrorClass | None = None
        self.message = ""
        self._cancel: Any = None
        # waits that a stop should cut short (limiter, backoff): a stop must not wait them out
        self._waits: set[anyio.CancelScope] = set()

    @property
    def reason(self) -> ErrorClass | None:
        return self._reason

    @reason.setter
    def reason(self, reason: ErrorClass | None) -> None:
        self._reason = reason
        self.stopping = reason is not None

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

    @contextlib.contextmanager
    def cancels(self, scope: anyio.CancelScope) -> Iterator[None]:
        """While the block runs, ``cancel`` also cancels ``scope`` (a pool's task group):
        the one way another module attaches its requests in flight to the switch."""
        self._cancel = scope.cancel
        try:
            yield
        finally:
            self._cancel = None

    def cancel(self) -> None:
        self.stop(ErrorClass.CANCELLED, "cancelled")
        if self._cancel is not None:
            self._cancel()
