"""One token bucket, for both ends of a rate limit: the gate paces requests out with it
(batchgen.limits.pacing) and the simulator refuses requests in with it (batchgen.sim.limits).

It is a plain record with the time passed in (``now`` arguments): nothing here waits or reads
a clock, so the gate drives it from the event loop's time (and so from the virtual clock in
tests) and the simulator from its injected ``monotonic``.

Why not aiolimiter: ``AsyncLimiter`` keeps its level and rate in private attributes
(``_level``, ``_rate_per_sec``) and has no public way to change its rate in place or to empty
the bucket, both of which the autopilot does several times a second; subclassing it tied the
gate to one release's internals. The waiting part (a queue of workers woken when a token is
due or the rate moves) is in ``pacing.Paced``; this is the arithmetic.
"""

from __future__ import annotations


class TokenBucket:
    """``per_minute`` tokens a minute into a bucket of ``capacity`` tokens
    (``max(1, per_minute / 60 * burst_s)``), refilled continuously.

    ``take`` may drive the bucket negative: a cost over the capacity (n images against a tiny
    images/min limit) passes when the bucket is full and the debt is paid back at the rate, so
    the long-run rate stays exact.
    """

    __slots__ = ("_stamp", "burst_s", "capacity", "per_minute", "tokens")

    def __init__(
        self, per_minute: float, now: float, burst_s: float = 1.0, *, full: bool = True
    ) -> None:
        self.per_minute = per_minute
        self.burst_s = burst_s
        self.capacity = capacity_of(per_minute, burst_s)
        self.tokens = self.capacity if full else 0.0
        self._stamp = now

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0

    def refill(self, now: float) -> None:
        """Add what has dripped in since the last look (never past the capacity)."""
        elapsed = max(0.0, now - self._stamp)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.per_second)
        self._stamp = now

    def wait_for(self, cost: float) -> float:
        """Seconds until ``cost`` tokens (at most a full bucket) are there; 0 when they are.
        (Call ``refill`` first.)"""
        need = min(cost, self.capacity)
        if self.tokens >= need - 1e-9:
            return 0.0
        return (need - self.tokens) / self.per_second

    def take(self, cost: float) -> None:
        self.tokens -= cost

    def try_take(self, cost: float, now: float) -> bool:
        """``refill``, then ``take`` when ``wait_for(cost)`` is 0: True; False with nothing
        taken otherwise."""
        self.refill(now)
        if self.wait_for(cost) > 0.0:
            return False
        self.take(cost)
        return True

    def empty(self, now: float) -> None:
        """No token left: the next one drips in one spacing from ``now``."""
        self.refill(now)
        self.tokens = min(self.tokens, 0.0)

    def set_rate(
        self, per_minute: float, now: float, burst_s: float | None = None, *, keep: str = "tokens"
    ) -> None:
        """A new rate from ``now`` on; what dripped in before is counted at the old rate.

        ``keep="tokens"`` (a server whose limit changes) keeps the tokens there are, up to the
        new capacity; ``keep="used"`` (the gate) keeps how far below full the bucket is, so a
        rate raised from an empty bucket lets out only the capacity it gained."""
        self.refill(now)
        used = self.capacity - self.tokens
        self.per_minute = per_minute
        if burst_s is not None:
            self.burst_s = burst_s
        self.capacity = capacity_of(per_minute, self.burst_s)
        if keep == "used":
            self.tokens = self.capacity - min(used, self.capacity)
        else:
            self.tokens = min(self.tokens, self.capacity)

    def restart(self, now: float) -> None:
        """Full again, counted from ``now``."""
        self.tokens = self.capacity
        self._stamp = now

    def remaining(self) -> int:
        """Remaining on the per-minute scale the headers use: a full bucket = the limit."""
        return max(0, int(self.per_minute * max(0.0, self.tokens) / self.capacity))

    def reset_s(self) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, (self.capacity - self.tokens) / self.per_second)


def capacity_of(per_minute: float, burst_s: float) -> float:
    return max(1.0, per_minute / 60.0 * burst_s)
