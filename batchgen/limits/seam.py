"""The gate as the pool sees it: a Protocol, so the pool takes any gate that keeps it —
the autopilot's :class:`batchgen.limits.gate.RateLimiter`, or a Router's shared gate that only
bounds the workers (batchgen.provider.router.SharedGate) while each endpoint paces itself."""

from __future__ import annotations

from typing import Any, Protocol

from batchgen.limits.pacing import Ticket


class Gate(Protocol):
    """What every request passes: ``admit`` → (the request) → ``on_ok`` / ``on_throttled`` /
    ``on_other`` → ``leave``; and what the pool's stall watchdog and progress line read."""

    max_pause_s: float  # no Retry-After holds the pool longer than this at once
    throttled_since_progress: int  # 429s since the last answer that was progress

    @property
    def concurrency_cap(self) -> int:
        """In flight at most: the pool starts this many workers."""
        ...

    async def admit(self, n: int = 1) -> Ticket:
        """Wait until a request of ``n`` images may leave; it leaves at once."""
        ...

    def leave(self, ticket: Ticket) -> None: ...

    def on_ok(self, ticket: Ticket | None, headers: dict[str, str] | None) -> None: ...

    def on_throttled(
        self,
        ticket: Ticket | None,
        retry_after_s: float | None,
        headers: dict[str, str] | None = None,
        message: str = "",
        code: str = "",
    ) -> float:
        """A 429: returns the pause held (seconds)."""
        ...

    def on_other(self) -> None:
        """An answer that was neither a success nor a 429: the run is progressing."""
        ...

    def observe_headers(self, headers: dict[str, str] | None) -> None: ...

    def stalled_s(self) -> float:
        """Seconds since the last progress."""
        ...

    def describe(self) -> str:
        """The progress line's part."""
        ...

    def learned(self) -> dict[str, Any]:
        """What was found about the provider's limits, for run.json and the report."""
        ...
