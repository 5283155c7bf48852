"""Rate limits for the pool: requests/min and images/min, smooth from the first second,
a pool-wide pause on 429, and additive-increase / multiplicative-decrease adaptation.

Both rates are aiolimiter leaky buckets whose capacity is a fraction of a second's worth
(``burst_s``), not a minute's: ``AsyncLimiter(600, 60)`` would let 600 requests out in the first
instant, and a provider that counts per second answers 429. Images are taken one at a time, so a
request with n=4 waits for 4 image tokens and the bucket never needs a capacity of n.

Adaptation lives here, not in the workers: the pool reports each answer (``on_success``,
``on_rate_limited``, ``observe_headers``) and the limiter moves its effective rate:

* a 429 multiplies the rate by ``decrease`` (at most once per ``cooldown_s``, since the requests
  already in flight answer 429 together) and pauses every worker until Retry-After has passed;
* each ``increase_every_s`` without a 429 adds ``increase`` × the ceiling;
* the ceiling is the user's --rpm, lowered to the server's announced ``x-ratelimit-limit-*``;
  a server that raises its limit mid-run raises the ceiling again;
* ``x-ratelimit-remaining-*`` near zero with a reset in the future paces the pool until then.

All time is the event loop's (``anyio.current_time``), so tests run this on a virtual clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import anyio
from aiolimiter import AsyncLimiter

from batchgen.errors import parse_reset_duration


@dataclass(frozen=True, slots=True)
class AdaptConfig:
    decrease: float = 0.75
    increase: float = 0.02
    increase_every_s: float = 1.0
    cooldown_s: float = 2.0
    floor: float = 0.05  # never below this share of the ceiling
    burst_s: float = 0.2  # bucket capacity, in seconds of the current rate
    headroom: float = 0.985  # share of a server-announced limit to aim for


class _Bucket(AsyncLimiter):
    """aiolimiter's leaky bucket with a rate that changes in place.

    Replacing the bucket on every adjustment would forget how full it is and let a burst of
    its whole capacity through each time (AIMD adjusts every second: that alone overshoots the
    rate by a fifth). aiolimiter keeps its state in ``_level`` and ``_rate_per_sec``; drain
    the bucket at the old rate first, then switch."""

    def set_rate(self, capacity: float, period: float) -> None:
        self._leak()
        self.max_rate = capacity
        self.time_period = period
        self._rate_per_sec = capacity / period
        self._level = min(self._level, capacity)
        self._wake_next()


class _Rate:
    """One adaptive rate (per minute) backed by an aiolimiter bucket of unit acquisitions."""

    def __init__(self, per_min: float, cfg: AdaptConfig) -> None:
        self.configured = float(per_min)
        self.ceiling = float(per_min)
        self.current = float(per_min)
        self._cfg = cfg
        self._bucket = self._make_bucket()
        # one request collects its n image tokens before the next starts: tokens handed out
        # round-robin to many waiting requests would delay all of them
        self._order = anyio.Lock()

    def _shape(self) -> tuple[float, float]:
        per_s = self.current / 60.0
        capacity = max(1.0, per_s * self._cfg.burst_s)
        return capacity, capacity / per_s

    def _make_bucket(self) -> _Bucket:
        return _Bucket(*self._shape())

    async def acquire(self, amount: int) -> None:
        if amount == 1:
            await self._bucket.acquire(1)
            return
        # one token at a time, so capacity stays below a second's worth whatever n is
        async with self._order:
            for _ in range(amount):
                await self._bucket.acquire(1)

    def set_current(self, value: float) -> None:
        value = min(self.ceiling, max(self.ceiling * self._cfg.floor, value))
        if not math.isclose(value, self.current, rel_tol=1e-3):
            self.current = value
            self._bucket.set_rate(*self._shape())

    def set_ceiling(self, announced: float) -> None:
        """The server announced its limit: stay just under it (its bucket and ours drift)."""
        ceiling = min(self.configured, announced * self._cfg.headroom)
        if ceiling != self.ceiling:
            self.ceiling = ceiling
            if self.current > ceiling:
                self.set_current(ceiling)


class RateLimiter:
    """The pool's gate: ``await acquire(n)`` before each request of n images."""

    def __init__(
        self,
        rpm: float | None = None,
        ipm: float | None = None,
        *,
        adapt: bool = True,
        config: AdaptConfig | None = None,
    ) -> None:
        cfg = config or AdaptConfig()
        self._cfg = cfg
        self._adapt = adapt
        self.requests = _Rate(rpm, cfg) if rpm else None
        self.images = _Rate(ipm, cfg) if ipm else None
        self.paused_until = 0.0
        self.paused_total_s = 0.0
        self.rate_limited = 0
        self._last_decrease = -math.inf
        self._last_increase = 0.0

    @property
    def rates(self) -> list[_Rate]:
        return [r for r in (self.requests, self.images) if r is not None]

    async def acquire(self, n: int = 1) -> float:
        """Wait for the pause, then for one request token and n image tokens.

        Returns the seconds spent waiting (the log's ``wait_s``)."""
        start = anyio.current_time()
        while (delay := self.paused_until - anyio.current_time()) > 0:
            await anyio.sleep(delay)
        if self.requests is not None:
            await self.requests.acquire(1)
        if self.images is not None:
            await self.images.acquire(n)
        return anyio.current_time() - start

    def pause(self, seconds: float) -> None:
        """Hold every worker until ``seconds`` from now (Retry-After, reset of a window)."""
        now = anyio.current_time()
        until = now + max(0.0, seconds)
        if until > self.paused_until:
            self.paused_total_s += until - max(now, self.paused_until)
            self.paused_until = until

    def on_rate_limited(self, retry_after_s: float | None) -> None:
        self.rate_limited += 1
        self.pause(retry_after_s if retry_after_s is not None else 1.0)
        if not self._adapt:
            return
        now = anyio.current_time()
        if now - self._last_decrease >= self._cfg.cooldown_s:
            self._last_decrease = now
            self._last_increase = now
            for rate in self.rates:
                rate.set_current(rate.current * self._cfg.decrease)

    def on_success(self) -> None:
        if not self._adapt:
            return
        now = anyio.current_time()
        if now - self._last_increase >= self._cfg.increase_every_s:
            self._last_increase = now
            for rate in self.rates:
                if rate.current < rate.ceiling:
                    rate.set_current(rate.current + rate.ceiling * self._cfg.increase)

    def observe_headers(self, headers: dict[str, str]) -> None:
        """Learn from ``x-ratelimit-{limit,remaining,reset}-{requests,images}``."""
        if not headers or not self._adapt:
            return
        for kind, rate in (("requests", self.requests), ("images", self.images)):
            if rate is None:
                continue
            limit = _number(headers.get(f"x-ratelimit-limit-{kind}"))
            if limit:
                rate.set_ceiling(limit)
            remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
            reset = parse_reset_duration(headers.get(f"x-ratelimit-reset-{kind}"))
            if remaining is not None and remaining < 1 and reset:
                self.pause(reset)

    def describe(self) -> str:
        parts = []
        if self.requests:
            parts.append(f"{self.requests.current:.0f} req/min")
        if self.images:
            parts.append(f"{self.images.current:.0f} img/min")
        return ", ".join(parts) or "no rate limit"


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
