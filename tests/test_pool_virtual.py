"""The worker pool (batchgen.runner.pool.run_pool) on the virtual clock, with the in-memory
provider and a list as the sink: pacing, in-flight slots, the stall watchdog, stops, the
progress callback and a batch of thousands of jobs, each in milliseconds of real time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from batchgen.errors import ErrorClass
from batchgen.jobs.model import Job
from batchgen.limits import BURST_S, RateLimiter
from batchgen.limits.stop import RunControl
from batchgen.runner.pool import PoolSettings, PoolTally, RowContext, run_pool
from batchgen.testing import BackoffWaits, MemoryProvider, VirtualClock, run_virtual
from batchgen.testing.memory import auth, ok, rate_limited, server_error


def jobs(count: int, n: int = 1) -> list[Job]:
    return [
        Job.make(f"j{i}", i + 1, {"model": "mem-model", "prompt": f"p{i}", "n": n})
        for i in range(count)
    ]


async def pool(
    tmp: Path,
    work: list[Job],
    provider: MemoryProvider,
    limiter: RateLimiter,
    rows: list[dict[str, Any]],
    **kw: Any,
) -> PoolTally:
    images = tmp / "images"
    images.mkdir(exist_ok=True)
    return await run_pool(
        work,
        provider,
        limiter,
        rows,
        context=RowContext("r1", 1, "memory", images),
        clock=VirtualClock(),
        **kw,
    )


def _max_in_window(times: list[float], window: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_requests_go_out_at_the_rpm_from_the_first_second(tmp_path: Path) -> None:
    provider = MemoryProvider(latency_s=2.0)
    rows: list[dict[str, Any]] = []

    async def main() -> PoolTally:
        limiter = RateLimiter(rpm=120, adapt=False, concurrency=16)
        return await pool(tmp_path, jobs(60), provider, limiter, rows)

    tally = run_virtual(main)
    sent = sorted(c.sent_at for c in provider.calls)
    burst = max(1.0, 2 * BURST_S)
    assert _max_in_window(sent, 1.0) <= 2 + burst  # 2 per second, never a minute's worth
    assert _max_in_window(sent, 10.0) <= 21
    assert sent[-1] - sent[0] == pytest.approx(59 / 2.0, rel=0.1)
    assert tally.ok_jobs == 60 and len(rows) == 60
    assert all(r["wait_s"] >= 0 for r in rows)


def test_in_flight_never_passes_the_slots(tmp_path: Path) -> None:
    provider = MemoryProvider(latency_s=10.0)
    rows: list[dict[str, Any]] = []
    elapsed: list[float] = []

    async def main() -> None:
        t0 = anyio.current_time()
        limiter = RateLimiter(adapt=False, concurrency=4)
        await pool(tmp_path, jobs(20), provider, limiter, rows, settings=PoolSettings(8))
        elapsed.append(anyio.current_time() - t0)

    run_virtual(main)
    assert provider.peak == 4
    assert elapsed[0] == pytest.approx(50.0, abs=0.5)  # 20 jobs, 4 at a time, 10 s each


def test_images_per_minute_pace_jobs_by_their_n(tmp_path: Path) -> None:
    provider = MemoryProvider(latency_s=0.1)
    rows: list[dict[str, Any]] = []

    async def main() -> None:
        limiter = RateLimiter(ipm=60, adapt=False, concurrency=8)
        await pool(tmp_path, jobs(10, n=3), provider, limiter, rows)

    run_virtual(main)
    sent = sorted(c.sent_at for c in provider.calls)
    # 30 images at one per second: ~27 s between the first and the last request
    assert sent[-1] - sent[0] == pytest.approx(27.0, rel=0.15)
    assert sum(r["image_count"] for r in rows) == 30


def test_nothing_but_429s_stops_at_the_stall_timeout_with_every_job_pending(
    tmp_path: Path,
) -> None:
    provider = MemoryProvider(default=rate_limited(5.0))
    rows: list[dict[str, Any]] = []
    control = RunControl()
    elapsed: list[float] = []

    async def main() -> PoolTally:
        t0 = anyio.current_time()
        limiter = RateLimiter(rpm=600, adapt=False, concurrency=4)
        settings = PoolSettings(4, stall_timeout_s=60.0)
        tally = await pool(
            tmp_path, jobs(8), provider, limiter, rows, settings=settings, control=control
        )
        elapsed.append(anyio.current_time() - t0)
        return tally

    tally = run_virtual(main)
    assert control.reason is ErrorClass.RATE_LIMIT and "no progress for" in control.message
    assert 60.0 <= elapsed[0] <= 70.0
    assert tally.failed_jobs == 0 and tally.ok_jobs == 0
    finals = [r for r in rows if r["final"]]
    assert finals and all(r["status"] == "skipped" for r in finals)  # pending, not failed
    assert all(r["error_class"] == "rate_limit" for r in rows)


def test_an_auth_answer_mid_run_stops_dispatch(tmp_path: Path) -> None:
    provider = MemoryProvider({"j25": [auth()]}, latency_s=1.0)
    rows: list[dict[str, Any]] = []
    control = RunControl()

    async def main() -> PoolTally:
        limiter = RateLimiter(adapt=False, concurrency=4)
        return await pool(tmp_path, jobs(200), provider, limiter, rows, control=control)

    tally = run_virtual(main)
    assert control.reason is ErrorClass.AUTH
    assert len(provider.calls) < 40  # the requests in flight finish, no new one goes out
    taken = {r["job_id"] for r in rows}
    assert len(taken) == tally.taken < 200  # jobs never taken get no row: still pending
    assert tally.finished == tally.taken


def test_retries_of_one_job_do_not_hold_up_the_others(tmp_path: Path) -> None:
    provider = MemoryProvider({"j0": [server_error()] * 3}, latency_s=1.0)
    rows: list[dict[str, Any]] = []

    async def main() -> PoolTally:
        limiter = RateLimiter(adapt=False, concurrency=2)
        settings = PoolSettings(2, backoff_base_s=30.0, backoff_max_s=30.0)
        return await pool(tmp_path, jobs(10), provider, limiter, rows, settings=settings)

    tally = run_virtual(main)
    assert tally.ok_jobs == 10 and tally.retries == 3
    last_other = max(c.ended_at or 0 for c in provider.calls if c.job_id != "j0")
    j0 = [c for c in provider.calls if c.job_id == "j0"]
    assert last_other < j0[-1].sent_at  # the others were done while j0 backed off


def test_progress_is_reported_per_job_and_rows_match_the_tally(tmp_path: Path) -> None:
    provider = MemoryProvider({"j1": [server_error()], "j2": [rate_limited(1.0)]})
    rows: list[dict[str, Any]] = []
    seen: list[int] = []

    async def main() -> PoolTally:
        limiter = RateLimiter(adapt=False, concurrency=3)
        return await pool(
            tmp_path,
            jobs(5),
            provider,
            limiter,
            rows,
            on_progress=lambda t: seen.append(t.finished),
        )

    tally = run_virtual(main)
    assert seen == [1, 2, 3, 4, 5]
    assert tally.attempts == len(rows) == 7 and tally.retries == 2
    assert tally.errors == {"server": 1, "rate_limit": 1}


def test_a_big_batch_on_the_virtual_clock(tmp_path: Path, no_backoff: BackoffWaits) -> None:
    """A thousand jobs with faults at a fixed rate: paced, every job accounted for. The
    backoffs are asked for, not slept (their full jitter would make the end time random)."""

    def script(job: Job, number: int) -> Any:
        i = int(job.id[1:])
        if i % 50 == 0 and number == 1:
            return server_error()
        if i % 70 == 0 and number == 1:
            return rate_limited()
        return ok(0.5 + (i % 7) / 10)

    provider = MemoryProvider(script)
    rows: list[dict[str, Any]] = []
    elapsed: list[float] = []

    async def main() -> PoolTally:
        t0 = anyio.current_time()
        limiter = RateLimiter(rpm=6000, adapt=False, concurrency=128)
        settings = PoolSettings(128)
        tally = await pool(tmp_path, jobs(1000), provider, limiter, rows, settings=settings)
        elapsed.append(anyio.current_time() - t0)
        return tally

    tally = run_virtual(main)
    assert tally.ok_jobs == 1000 and tally.failed_jobs == 0
    assert len({r["job_id"] for r in rows if r["status"] == "ok"}) == 1000
    assert tally.retries == 20 + 15 - 3  # every 50th, every 70th (less the 3 that are both)
    assert no_backoff.count == 20  # the server errors back off; a 429 pauses the pool instead
    # 100 requests a second: never faster; slower only by the pauses the 429s asked for
    assert 1032 / 100 * 0.98 <= elapsed[0] <= 1032 / 100 * 1.1
