"""The limiter's gate on a virtual clock: rates hold from the first second, a 429 pauses the
whole pool, pauses are capped, a stop cuts waits short. (The autopilot's adaptation:
tests/test_autopilot.py.)"""

from __future__ import annotations

import anyio
import pytest

from batchgen.limits import BURST_S, RateLimiter
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
    burst = max(1.0, per_s * BURST_S)
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
        limiter.on_throttled(None, retry_after_s=5.0)
        return t429, await _drive(limiter, workers=16, jobs=16)

    t429, grants = run_virtual(main)
    assert min(grants) >= t429 + 5.0


def test_remaining_zero_pauses_for_one_unit_not_the_whole_reset() -> None:
    """remaining 0 means the provider's bucket is empty: wait for one request's worth of it
    (60 / limit s), not until it is full again (the reset)."""

    async def main() -> tuple[float, float]:
        limiter = RateLimiter(rpm=600)
        t0 = anyio.current_time()
        limiter.observe_headers(
            {
                "x-ratelimit-limit-requests": "120",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "20s",
            }
        )
        await limiter.acquire()
        waited_known = anyio.current_time() - t0
        limiter.observe_headers(
            {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"}
        )
        t1 = anyio.current_time()
        await limiter.acquire()
        return waited_known, anyio.current_time() - t1

    known, unknown = run_virtual(main)
    assert known == pytest.approx(0.5, abs=0.01)  # 60 / 120
    assert unknown == pytest.approx(1.5, abs=0.01)  # no limit known: the reset


def test_no_pause_passes_the_cap_and_the_cap_is_reported() -> None:
    async def main() -> tuple[float, str, float]:
        limiter = RateLimiter(rpm=600, max_pause_s=30.0)
        held = limiter.pause(86_400)
        text = limiter.describe()
        t0 = anyio.current_time()
        await limiter.acquire()
        return held, text, anyio.current_time() - t0

    held, text, waited = run_virtual(main)
    assert held == 30.0
    assert waited == pytest.approx(30.0, abs=0.01)
    assert "asked 86400s, capped" in text


def test_a_stop_cuts_limiter_waits_and_backoff_short() -> None:
    from batchgen.errors import ErrorClass
    from batchgen.limits.stop import RunControl

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
    """The autopilot moves the rate every second; no move may hand out a fresh burst."""

    async def main() -> list[float]:
        limiter = RateLimiter(rpm=6000)
        assert limiter.requests is not None
        control = limiter.requests.control
        grants: list[float] = []

        async def worker() -> None:
            for i in range(200):
                await limiter.acquire()
                grants.append(anyio.current_time())
                if i % 20 == 0:  # nudge the rate up and down, as the autopilot does
                    control.current = 5000 if control.current > 5050 else 5100
                    limiter.requests.sync()

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(worker)
        return grants

    grants = sorted(run_virtual(main))
    # ≈ 5000-5100/min = 83-85/s: 1,600 grants take ≥ 18.5 s, not less (bursts would shorten it)
    assert grants[-1] - grants[0] >= (len(grants) - 20) / (5100 / 60)


def test_the_limits_and_the_simulators_bucket_touch_no_private_name_of_another_object() -> None:
    """Issue 24, point 3, for the gate and the bucket: no ``obj._name`` but on ``self`` (the
    gate once wrote aiolimiter's ``_level`` and ``_wake_next``), and no dependency's class
    subclassed. Read from the source, every attribute access."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "batchgen"
    files = [*sorted((root / "limits").glob("*.py")), root / "sim" / "limits.py"]
    found = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ClassDef):
                found += [
                    f"{path.name}:{node.lineno} {node.name}({ast.unparse(b)})"
                    for b in node.bases
                    if "." in ast.unparse(b)
                ]
    assert found == []


def test_try_admit_lets_out_only_what_admit_would_not_hold() -> None:
    """The attempt's fast path: a Ticket when a slot, the tokens and no pause are there;
    None with nothing taken otherwise; and workers that try it first keep the rate."""

    async def main() -> tuple[list[float], list[bool], int]:
        limiter = RateLimiter(rpm=600, adapt=False, concurrency=2)
        grants: list[float] = []
        first = limiter.try_admit()
        second = limiter.try_admit()
        full = limiter.try_admit()  # both slots taken
        assert first is not None and second is not None
        limiter.leave(first)
        limiter.leave(second)
        limiter.pause(1.0)
        paused = limiter.try_admit()
        held = [full is None, paused is None, limiter.slots_taken == 0]
        left = iter(range(200))

        async def worker() -> None:
            for _ in left:
                ticket = limiter.try_admit() or await limiter.admit()
                grants.append(anyio.current_time())
                await anyio.sleep(0.01)
                limiter.leave(ticket)

        async with anyio.create_task_group() as tg:
            for _ in range(2):  # no more than the slots: nobody queues, the fast path is open
                tg.start_soon(worker)
        return grants, held, limiter.slots_taken

    grants, held, taken = run_virtual(main)
    assert held == [True, True, True]
    assert taken == 0
    per_s = 10.0
    assert _max_in_window(grants, 1.0) <= per_s + max(1.0, per_s * BURST_S)
    assert grants[-1] - grants[0] == pytest.approx(199 / per_s, rel=0.1)


def test_waiters_for_a_rate_wake_once_each_not_once_per_token(monkeypatch) -> None:
    """A hundred workers queued on a 600/min rate: each sleeps until the token of its place in
    the queue is due, so the 100 tokens cost about a hundred wake-ups, not one per waiter per
    token (~5,000: the whole queue woke for every token, and one of them took it). Counted by
    the pacing clock's reads, one per look at the bucket; the times stay the rate's."""
    import anyio

    from batchgen.limits import pacing
    from batchgen.limits.autopilot import AutopilotConfig, RateControl
    from tests.vtime import run_virtual

    reads = [0]
    real = pacing.loop_time

    def counted() -> float:
        reads[0] += 1
        return real()

    async def main() -> tuple[list[float], int]:
        start = real()
        paced = pacing.Paced(RateControl("requests", 600.0, AutopilotConfig(), start), start)
        monkeypatch.setattr(pacing, "loop_time", counted)
        taken: list[float] = []

        async def worker() -> None:
            await paced.acquire(1)
            taken.append(real() - start)

        async with anyio.create_task_group() as tg:
            for _ in range(100):
                tg.start_soon(worker)
        return taken, reads[0]

    taken, looks = run_virtual(main)
    assert len(taken) == 100
    assert looks < 400, looks
    # the pace is the rate's: 10 a second after the bucket's first two (0.2 s of burst)
    assert 9.5 < max(taken) < 10.2, max(taken)
    gaps = [b - a for a, b in zip(sorted(taken)[2:], sorted(taken)[3:], strict=False)]
    assert min(gaps) > 0.09, min(gaps)
