"""The limiter on a virtual clock: rates hold from the first second, 429 pauses the whole pool,
AIMD moves the rate down and back up."""

from __future__ import annotations

import anyio
import pytest

from batchgen.limits import AdaptConfig, RateLimiter
from tests.vtime import run_virtual


def _max_in_window(times: list[float], window: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def _drive(limiter: RateLimiter, workers: int, jobs: int, n: int = 1) -> list[float]:
    grants: list[float] = []
    left = iter(range(jobs))

    async def worker() -> None:
        for _ in left:
            await limiter.acquire(n)
            grants.append(anyio.current_time())

    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
    return grants


@pytest.mark.parametrize("rpm", [60, 600, 6000])
def test_requests_per_window_never_pass_rpm_first_second_included(rpm: int) -> None:
    async def main() -> list[float]:
        return await _drive(RateLimiter(rpm=rpm, adapt=False), workers=64, jobs=rpm // 2)

    grants = run_virtual(main)
    per_s = rpm / 60
    # first second: at most one burst_s worth beyond the steady rate (not a minute's quota)
    burst = max(1.0, per_s * AdaptConfig().burst_s)
    first = sum(1 for t in grants if t - grants[0] < 1.0)
    assert first <= per_s + burst
    assert _max_in_window(grants, 1.0) <= per_s + burst
    assert _max_in_window(grants, 10.0) <= per_s * 10 * 1.05
    # and it is not slower than asked: the batch takes ~jobs/rate seconds
    assert grants[-1] - grants[0] == pytest.approx((len(grants) - 1) / per_s, rel=0.25)


def test_images_per_minute_counts_each_image() -> None:
    async def main() -> list[float]:
        return await _drive(RateLimiter(ipm=120, adapt=False), workers=8, jobs=30, n=4)

    grants = run_virtual(main)
    # 30 requests × 4 images at 2 images/s ≈ 60 s
    assert grants[-1] - grants[0] == pytest.approx(59.5, abs=2.0)
    assert _max_in_window(grants, 10.0) * 4 <= 2 * 10 * 1.05 + 4


def test_rate_limited_pauses_every_worker() -> None:
    async def main() -> tuple[float, list[float]]:
        limiter = RateLimiter(rpm=6000, adapt=False)
        await limiter.acquire()
        t429 = anyio.current_time()
        limiter.on_rate_limited(retry_after_s=5.0)
        return t429, await _drive(limiter, workers=16, jobs=16)

    t429, grants = run_virtual(main)
    assert min(grants) >= t429 + 5.0


def test_aimd_decreases_on_429_and_recovers() -> None:
    async def main() -> list[float]:
        cfg = AdaptConfig(decrease=0.5, increase=0.1, increase_every_s=1.0, cooldown_s=2.0)
        limiter = RateLimiter(rpm=600, config=cfg)
        seen = [limiter.requests.current]
        limiter.on_rate_limited(0.0)
        limiter.on_rate_limited(0.0)  # same burst of 429s: one decrease only
        seen.append(limiter.requests.current)
        for _ in range(10):
            await anyio.sleep(1.0)
            limiter.on_success()
        seen.append(limiter.requests.current)
        return seen

    start, after_429, recovered = run_virtual(main)
    assert after_429 == pytest.approx(start * 0.5)
    assert recovered == pytest.approx(start)  # +10% of the ceiling per second, capped


def test_announced_server_limit_caps_and_raises_the_ceiling() -> None:
    async def main() -> tuple[float, float, float]:
        limiter = RateLimiter(rpm=1200)
        limiter.observe_headers({"x-ratelimit-limit-requests": "600"})
        lowered = limiter.requests.current
        limiter.observe_headers({"x-ratelimit-limit-requests": "900"})
        for _ in range(30):
            await anyio.sleep(1.0)
            limiter.on_success()
        return lowered, limiter.requests.ceiling, limiter.requests.current

    lowered, ceiling, current = run_virtual(main)
    assert lowered == pytest.approx(600 * 0.985)
    assert ceiling == pytest.approx(900 * 0.985)
    assert current == pytest.approx(ceiling)


def test_remaining_zero_pauses_until_reset() -> None:
    async def main() -> float:
        limiter = RateLimiter(rpm=600)
        t0 = anyio.current_time()
        limiter.observe_headers(
            {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"}
        )
        await limiter.acquire()
        return anyio.current_time() - t0

    assert run_virtual(main) == pytest.approx(1.5, abs=0.01)


def test_a_stop_cuts_limiter_waits_and_backoff_short() -> None:
    from batchgen.control import RunControl
    from batchgen.errors import ErrorClass

    async def main() -> float:
        control = RunControl()
        limiter = RateLimiter(rpm=60, adapt=False)
        limiter.pause(3600)  # a long Retry-After
        t0 = anyio.current_time()

        async def waiter() -> None:
            with control.interruptible():
                await limiter.acquire()

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(5)
            control.stop(ErrorClass.AUTH, "bad key")
        return anyio.current_time() - t0

    assert run_virtual(main) == pytest.approx(5.0, abs=0.01)


def test_rate_changes_keep_the_bucket_full_no_burst_per_adjustment() -> None:
    """AIMD adjusts every second; each adjustment must not hand out a fresh burst."""

    async def main() -> list[float]:
        cfg = AdaptConfig(increase=0.001, increase_every_s=1.0)
        limiter = RateLimiter(rpm=6000, config=cfg)
        limiter.requests.set_current(5000)  # below the ceiling: every success nudges it up
        grants: list[float] = []

        async def worker() -> None:
            for _ in range(200):
                await limiter.acquire()
                grants.append(anyio.current_time())
                limiter.on_success()

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(worker)
        return grants

    grants = sorted(run_virtual(main))
    # ≈ 5000-5100/min = 83-85/s: 1,600 grants take ≥ 18.5 s, not less (bursts would shorten it)
    assert grants[-1] - grants[0] >= (len(grants) - 20) / (5100 / 60)
