"""A provider on the virtual clock for autopilot tests: the simulator's own token buckets
(batchgen.sim.limits.ServerLimiter, fed the event loop's time), an optional cap on concurrent
requests, and answers shaped like the simulator's (x-ratelimit headers or none, Retry-After in
ms, whole seconds or absent). Workers go through the real RateLimiter exactly as the pool's
do: acquire → enter → answer → on_ok / on_throttled → leave.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from batchgen.limits import RateLimiter
from batchgen.sim.limits import ServerLimiter

RTT_S = 0.002  # a 429 comes back after one round trip


@dataclass
class Provider:
    rpm: float | None = None
    ipm: float | None = None
    schedule: tuple[tuple[float, float], ...] = ()
    max_concurrent: int | None = None
    headers: bool = True
    retry_after: str = "ms"  # ms | seconds | none
    latency: Callable[[random.Random], float] = lambda r: max(0.05, r.gauss(0.3, 0.1))
    seed: int = 1
    accepted: list[tuple[float, int]] = field(default_factory=list)
    refused: int = 0
    active: int = 0
    peak: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.server = ServerLimiter(anyio.current_time, self.rpm, self.ipm, self.schedule)

    def retry(self, wait_s: float) -> float | None:
        if self.retry_after == "ms":
            return max(0.001, math.ceil(wait_s * 1000) / 1000)
        if self.retry_after == "seconds":
            return float(max(1, math.ceil(wait_s)))
        return None


async def drive(limiter: RateLimiter, provider: Provider, ns: list[int]) -> float:
    """Run every job (n images each) to success; returns the virtual seconds it took."""
    jobs = iter(ns)
    t0 = anyio.current_time()

    async def worker() -> None:
        for n in jobs:
            while True:
                await limiter.acquire(n)
                ticket = await limiter.enter()
                try:
                    if await _answer(limiter, provider, ticket, n):
                        break
                finally:
                    limiter.leave(ticket)

    async with anyio.create_task_group() as tg:
        for _ in range(limiter.concurrency_cap):
            tg.start_soon(worker)
    return anyio.current_time() - t0


async def _answer(limiter: RateLimiter, p: Provider, ticket: object, n: int) -> bool:
    await anyio.sleep(RTT_S / 2)
    if p.max_concurrent is not None and p.active >= p.max_concurrent:
        await anyio.sleep(RTT_S / 2)
        p.refused += 1
        limiter.on_throttled(
            ticket,
            None,
            None,
            "Too many concurrent requests",  # type: ignore[arg-type]
            "concurrency_limit_exceeded",
        )
        return False
    verdict = p.server.check(n)
    headers = p.server.headers() if p.headers else None
    if not verdict.allowed:
        await anyio.sleep(RTT_S / 2)
        p.refused += 1
        kind = verdict.limited_by or "requests"
        message = "Too Many Requests"
        if p.headers:
            limit = p.server.current_rpm() if kind == "requests" else p.ipm
            unit = "requests per min (RPM)" if kind == "requests" else "images per min (IPM)"
            message = f"Rate limit reached on {unit}: Limit {int(limit or 0)}."
        limiter.on_throttled(
            ticket,
            p.retry(verdict.retry_after_s),
            headers,
            message,  # type: ignore[arg-type]
            "rate_limit_exceeded",
        )
        return False
    p.active += 1
    p.peak = max(p.peak, p.active)
    p.accepted.append((anyio.current_time(), n))
    try:
        await anyio.sleep(p.latency(p.rng))
    finally:
        p.active -= 1
    await anyio.sleep(RTT_S / 2)
    limiter.on_ok(ticket, headers)  # type: ignore[arg-type]
    return True


def rate(
    accepted: list[tuple[float, int]], start: float, end: float, *, images: bool = False
) -> float:
    """Accepted per minute in [start, end)."""
    total = sum(n if images else 1 for t, n in accepted if start <= t < end)
    return total * 60.0 / (end - start)
