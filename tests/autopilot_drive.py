"""A provider on the virtual clock for autopilot tests: the simulator's own token buckets
(batchgen.sim.limits.ServerLimiter, fed the event loop's time), an optional cap on concurrent
requests, and answers shaped like the simulator's (x-ratelimit headers or none, Retry-After in
ms, whole seconds or absent). Workers go through the real RateLimiter exactly as the pool's
do: admit → answer → on_ok / on_throttled → leave.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from batchgen.limits import RateLimiter
from batchgen.sim.limits import ServerLimiter
from batchgen.sim.responses import server_rate_limited
from batchgen.sim.shapes import Shape

RTT_S = 0.002  # a 429 comes back after one round trip


@dataclass
class Provider:
    rpm: float | None = None
    ipm: float | None = None
    schedule: tuple[tuple[float, float], ...] = ()
    max_concurrent: int | None = None
    headers: bool = True
    retry_after: str = "ms"  # ms | seconds | none
    message: str | None = None  # "stated" (OpenAI's text) | "plain"; None: stated with headers
    latency: Callable[[random.Random], float] = lambda r: max(0.05, r.gauss(0.3, 0.1))
    seed: int = 1
    accepted: list[tuple[float, int]] = field(default_factory=list)
    refused: int = 0
    active: int = 0
    peak: int = 0
    # every request that reached the server: (time, n, refused)
    arrivals: list[tuple[float, int, bool]] = field(default_factory=list)
    first_answer: float | None = None  # when the first success reached the client
    # the way there, beyond half a round trip: seconds a request takes to reach the server
    # after the gate lets it out, given its index (0 = the run's first) and a random source.
    # None: none (every request arrives RTT_S / 2 after it leaves). A real path has a first
    # request slower than the rest (a new connection, first-use costs: +26 ms in the real-time
    # bench) and jitter (loopback under load: a request 71 ms later than its neighbours), and a
    # server bucket of one token refuses the request after a late one
    arrival_delay: Callable[[int, random.Random], float] | None = None
    departed: int = 0  # requests the gate let out so far

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.path_rng = random.Random(self.seed + 1)  # apart, so latencies stay as they were
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
                ticket = await limiter.admit(n)
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
    extra = 0.0
    if p.arrival_delay is not None:
        extra = max(0.0, p.arrival_delay(p.departed, p.path_rng))
    p.departed += 1
    await anyio.sleep(RTT_S / 2 + extra)
    now = anyio.current_time()
    if p.max_concurrent is not None and p.active >= p.max_concurrent:
        p.arrivals.append((now, n, True))
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
    p.arrivals.append((now, n, not verdict.allowed))
    if not verdict.allowed:
        await anyio.sleep(RTT_S / 2)
        p.refused += 1
        kind = verdict.limited_by or "requests"
        message = "Rate limit exceeded"
        if p.message == "stated" or (p.message is None and p.headers):
            message = server_rate_limited(
                "gpt-image-1", kind, _limit(p, kind), verdict.retry_after_s, requested=n
            ).message
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
    if p.first_answer is None:
        p.first_answer = anyio.current_time()
    # the answer's headers describe the limits when it is sent (as the simulator's do)
    headers = p.server.headers() if p.headers else None
    limiter.on_ok(ticket, headers)  # type: ignore[arg-type]
    return True


def rate(
    accepted: list[tuple[float, int]], start: float, end: float, *, images: bool = False
) -> float:
    """Accepted per minute in [start, end)."""
    total = sum(n if images else 1 for t, n in accepted if start <= t < end)
    return total * 60.0 / (end - start)


def _limit(p: Provider, kind: str) -> float | None:
    if kind == "requests":
        return p.server.current_rpm()
    return p.server.current_ipm()


# -- the realistic shapes (batchgen.sim.shapes) on the virtual clock ---------------------------
@dataclass
class ShapeRun:
    shape: Shape
    took: float
    refused: int
    sent: int
    first_hint: float | None  # when the first 429 or header reached the client
    worst_second: float  # most requests (images for an ipm shape) sent in one second after it
    learned: dict[str, object]
    per_second: list[int]

    @property
    def efficiency(self) -> float:
        return self.shape.ideal_s() / self.took

    @property
    def share_429(self) -> float:
        return self.refused / max(1, self.sent)

    @property
    def burst_ratio(self) -> float:
        """The worst second after the first hint over the limit's per-second share."""
        return self.worst_second / self.shape.limit_per_s()

    def row(self) -> str:
        return (
            f"{self.shape.key:16} eff {self.efficiency:5.2f}  429s {100 * self.share_429:5.1f} %"
            f"  worst s {self.burst_ratio:4.2f}x"
            f"  took {self.took:6.1f}/{self.shape.ideal_s():.1f} s"
        )


def scaled(shape: Shape, s: float) -> Shape:
    """The shape replayed ``1 / s`` times faster, as the real-time bench does (bench/shapes.py,
    Shape.sim_knobs): latencies × s, limits ÷ s, schedule times × s. The client's own clocks
    (its rate moves once a second, its ramp from one request a second) are not scaled, so a
    fixed cost at the start weighs 1 / s times more than on the unscaled shape."""
    return dataclasses.replace(
        shape,
        latency_median=shape.latency_median * s,
        rpm=shape.rpm / s if shape.rpm is not None else None,
        ipm=shape.ipm / s if shape.ipm is not None else None,
        schedule=tuple((t * s, r / s) for t, r in shape.schedule),
    )


def shape_provider(
    shape: Shape,
    seed: int = 1,
    arrival_delay: Callable[[int, random.Random], float] | None = None,
) -> Provider:
    median, sigma = shape.latency_median, shape.latency_sigma
    return Provider(
        rpm=shape.rpm,
        ipm=shape.ipm,
        schedule=shape.schedule,
        max_concurrent=shape.max_concurrent,
        headers=shape.headers,
        retry_after=shape.retry_after,
        message=shape.message,
        latency=lambda r: median * math.exp(sigma * r.gauss(0.0, 1.0)),
        seed=seed,
        arrival_delay=arrival_delay,
    )


def run_shape(
    shape: Shape,
    seed: int = 1,
    arrival_delay: Callable[[int, random.Random], float] | None = None,
    **limiter_kw: object,
) -> ShapeRun:
    """One shape, every job to success, on the virtual clock (``arrival_delay``: the path's
    extra delay per request, Provider.arrival_delay)."""
    from batchgen.testing.vtime import run_virtual

    async def main() -> ShapeRun:
        p = shape_provider(shape, seed, arrival_delay)
        limiter = RateLimiter(**limiter_kw)  # type: ignore[arg-type]
        t0 = anyio.current_time()
        ns = [shape.n_of(i) for i in range(shape.jobs)]
        took = await drive(limiter, p, ns)
        images = shape.ipm is not None
        hint = next((t for t, _, refused in p.arrivals if refused), None)
        if shape.headers and p.first_answer is not None:
            hint = p.first_answer if hint is None else min(hint, p.first_answer)
        bins: dict[int, int] = {}
        for t, n, _ in p.arrivals:
            bins[int(t - t0)] = bins.get(int(t - t0), 0) + (n if images else 1)
        after = [c for s, c in bins.items() if hint is not None and s > int(hint - t0)]
        per_second = [bins.get(s, 0) for s in range(int(took) + 1)]
        # a limit under a request a second (5 img/min): one request in a second is fine
        floor = 2 * max(shape.ns) if images else 2
        worst = max([0, *after])
        worst = worst if worst > floor else 0.0
        return ShapeRun(
            shape, took, p.refused, len(p.arrivals), hint, worst, limiter.learned(), per_second
        )

    return run_virtual(main)
