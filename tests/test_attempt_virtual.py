"""One job through its attempts (batchgen.runner.attempt), on the virtual clock with the
in-memory provider and a list as the sink: which answers are retried, how long the backoff
waits, which count against max_attempts, what stops the run, what the rows say. Every wait is
exact and takes no real time."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from batchgen import testing
from batchgen.errors import ErrorClass
from batchgen.jobs.model import Job
from batchgen.limits import RateLimiter
from batchgen.limits.stop import RunControl
from batchgen.money import Budget
from batchgen.money.load import load_prices
from batchgen.runner.pool import PoolSettings, PoolTally, RowContext, run_pool
from batchgen.testing import VIRTUAL_EPOCH, MemoryProvider, VirtualClock, run_virtual
from batchgen.testing.memory import (
    Answer,
    auth,
    content_policy,
    invalid_response,
    network,
    ok,
    quota,
    rate_limited,
    server_error,
    timeout,
)


def job(i: int | str, n: int = 1) -> Job:
    body = {"model": "mem-model", "prompt": f"a cat {i}", "size": "1024x1024", "n": n}
    return Job.make(str(i), 1, body)


class Run:
    """One pool run on the virtual clock, and what it left."""

    def __init__(self, tmp: Path, provider: MemoryProvider, **settings: Any) -> None:
        self.tmp = tmp
        (tmp / "images").mkdir(exist_ok=True)
        self.provider = provider
        self.settings = PoolSettings(**{"concurrency": 1, "backoff_base_s": 1.0, **settings})
        self.rows: list[dict[str, Any]] = []
        self.control = RunControl()
        self.tally = PoolTally()
        self.elapsed = 0.0

    def go(self, jobs: list[Job], limiter: RateLimiter | None = None, **kw: Any) -> Run:
        async def main() -> None:
            gate = limiter or RateLimiter(adapt=False, concurrency=self.settings.concurrency)
            t0 = anyio.current_time()
            self.tally = await run_pool(
                jobs,
                self.provider,
                gate,
                self.rows,
                context=RowContext("r1", 1, "memory", self.tmp / "images"),
                settings=self.settings,
                control=self.control,
                clock=VirtualClock(),
                **kw,
            )
            self.elapsed = anyio.current_time() - t0

        run_virtual(main)
        return self

    def of(self, job_id: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["job_id"] == job_id]

    def gaps(self, job_id: str) -> list[float]:
        """Seconds from the end of each request of the job to the start of the next."""
        calls = [c for c in self.provider.calls if c.job_id == job_id]
        return [b.sent_at - (a.ended_at or 0.0) for a, b in itertools.pairwise(calls)]


def test_a_server_error_is_retried_after_a_jittered_backoff(tmp_path: Path) -> None:
    run = Run(tmp_path, MemoryProvider({"a": [server_error(), ok()]}, latency_s=0.5))
    run.go([job("a")])
    rows = run.of("a")
    assert [(r["attempt"], r["status"], r["final"]) for r in rows] == [
        (1, "error", False),
        (2, "ok", True),
    ]
    assert rows[0]["error_class"] == "server" and rows[0]["http_status"] == 500
    (gap,) = run.gaps("a")
    assert 0.0 <= gap <= 1.0  # full jitter: up to backoff_base_s × 2⁰
    assert rows[1]["latency_s"] == pytest.approx(0.5)
    assert (tmp_path / rows[1]["image_paths"][0]).read_bytes() == testing.PNG_1X1
    assert run.tally.ok_jobs == 1 and run.tally.retries == 1


def test_max_attempts_bound_the_failures_and_backoff_grows_to_its_cap(tmp_path: Path) -> None:
    provider = MemoryProvider(default=server_error(503))
    run = Run(tmp_path, provider, max_attempts=6, backoff_base_s=2.0, backoff_max_s=10.0)
    run.go([job("a")])
    rows = run.of("a")
    assert len(rows) == 6 and provider.sent["a"] == 6
    assert [r["final"] for r in rows] == [False] * 5 + [True]
    assert run.tally.failed_jobs == 1 and run.tally.failed_by_class["server"] == 1
    caps = [2.0, 4.0, 8.0, 10.0, 10.0]  # base × 2^(k-1), capped at backoff_max_s
    assert all(0.0 <= gap <= cap + 1e-9 for gap, cap in zip(run.gaps("a"), caps, strict=True))


def test_retry_after_on_a_server_error_is_waited_exactly(tmp_path: Path) -> None:
    busy = Answer(503, code="overloaded", message="busy", retry_after_s=7.0, latency_s=0.0)
    run = Run(tmp_path, MemoryProvider({"a": [busy, ok()]}), backoff_max_s=60.0)
    run.go([job("a")])
    assert run.gaps("a") == [pytest.approx(7.0)]
    assert run.of("a")[0]["retry_after_s"] == 7.0


def test_429s_are_not_attempts_and_pause_for_their_hint(tmp_path: Path) -> None:
    # four 429s and one 500 before the image: max_attempts=2 still lets it through
    script = [rate_limited(3.0), rate_limited(3.0), rate_limited(), rate_limited(), server_error()]
    run = Run(tmp_path, MemoryProvider({"a": [*script, ok()]}), max_attempts=2)
    run.go([job("a")])
    rows = run.of("a")
    assert [r["attempt"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["error_class"] for r in rows[:5]] == ["rate_limit"] * 4 + ["server"]
    assert not any(r["final"] for r in rows[:5]) and rows[-1]["status"] == "ok"
    gaps = run.gaps("a")
    assert gaps[0] >= 3.0 and gaps[1] >= 3.0  # the Retry-After hint held the pool
    assert run.tally.ok_jobs == 1 and run.tally.failed_jobs == 0


def test_a_429_hint_pauses_every_worker_not_only_the_one_that_got_it(tmp_path: Path) -> None:
    provider = MemoryProvider({"a": [rate_limited(10.0)]}, latency_s=0.1)
    run = Run(tmp_path, provider, concurrency=2)
    run.go([job("a"), job("b"), job("c"), job("d")])
    refused_at = next(c.ended_at for c in provider.calls if c.outcome == "rate_limit")
    assert refused_at is not None
    later = [c.sent_at for c in provider.calls if c.sent_at > refused_at]
    assert later and min(later) >= refused_at + 10.0 - 1e-6
    assert run.tally.ok_jobs == 4


@pytest.mark.parametrize(("answer", "klass"), [(auth(), "auth"), (quota(), "quota")])
def test_auth_and_quota_stop_the_run_and_leave_the_rest_pending(
    tmp_path: Path, answer: Answer, klass: str
) -> None:
    provider = MemoryProvider({"3": [answer]}, latency_s=1.0)
    run = Run(tmp_path, provider, concurrency=1)
    run.go([job(i) for i in range(10)])
    assert run.control.reason is ErrorClass(klass)
    assert provider.sent["3"] == 1  # never retried
    assert sum(provider.sent.values()) == 4  # nothing sent after it
    (row,) = run.of("3")
    assert row["error_class"] == klass and row["final"] is True
    sent_after = {r["job_id"] for r in run.rows if r["status"] != "skipped"} - {"0", "1", "2", "3"}
    assert not sent_after
    assert all(r["error_class"] == klass for r in run.rows if r["status"] == "skipped")


def test_content_policy_fails_the_job_at_once_and_the_run_goes_on(tmp_path: Path) -> None:
    provider = MemoryProvider({"b": [content_policy()]})
    run = Run(tmp_path, provider)
    run.go([job("a"), job("b"), job("c")])
    assert provider.sent["b"] == 1
    (row,) = run.of("b")
    assert (row["error_class"], row["final"], row["http_status"]) == ("content_policy", True, 400)
    assert run.tally.ok_jobs == 2 and run.tally.failed_by_class["content_policy"] == 1
    assert run.control.reason is None


def test_a_request_that_never_answers_times_out_at_the_timeout(tmp_path: Path) -> None:
    provider = MemoryProvider({"a": [timeout(), network(), ok(2.0)]})
    run = Run(tmp_path, provider, timeout=30.0)
    run.go([job("a")])
    rows = run.of("a")
    assert [r["error_class"] for r in rows[:2]] == ["timeout", "network"]
    assert rows[0]["latency_s"] == pytest.approx(30.0)
    assert rows[2]["status"] == "ok" and rows[2]["latency_s"] == pytest.approx(2.0)


def test_a_billed_unusable_answer_is_costed_and_retried(tmp_path: Path) -> None:
    provider = MemoryProvider({"a": [invalid_response(billed_usd=0.04), ok()]})
    run = Run(tmp_path, provider)
    run.go([job("a")], prices=load_prices(fallback_per_image=0.05))
    rows = run.of("a")
    assert rows[0]["error_class"] == "invalid_response" and rows[0]["cost_usd"] == 0.04
    assert rows[1]["cost_usd"] == pytest.approx(0.05)
    assert run.tally.cost_usd == pytest.approx(0.09)


def test_the_budget_gate_sends_only_what_fits_and_stops_dispatch(tmp_path: Path) -> None:
    prices = load_prices()
    budget = Budget(0.35, 0.0, prices, price_per_image=0.10)
    provider = MemoryProvider(latency_s=1.0)
    run = Run(tmp_path, provider, concurrency=4)
    run.go(
        [job(i) for i in range(10)],
        prices=budget.prices,
        budget=budget,
        cheapest_job_usd=0.10,
    )
    assert sum(provider.sent.values()) == 3  # 3 × $0.10 fit under $0.35, a 4th does not
    assert run.tally.cost_usd == pytest.approx(0.30)
    assert run.control.reason is ErrorClass.BUDGET
    assert run.tally.ok_jobs == 3
    assert all(r["error_class"] == "budget" for r in run.rows if r["status"] == "skipped")


def test_rows_are_stamped_on_the_injected_clock(tmp_path: Path) -> None:
    run = Run(tmp_path, MemoryProvider({"a": [server_error()]}, latency_s=4.0))
    run.go([job("a")])
    first, second = run.of("a")
    call1, call2 = run.provider.calls
    assert first["started_at"] == pytest.approx(VIRTUAL_EPOCH + call1.sent_at)
    assert first["finished_at"] == pytest.approx(VIRTUAL_EPOCH + call1.sent_at + 4.0)
    assert second["started_at"] == pytest.approx(VIRTUAL_EPOCH + call2.sent_at)
    assert second["finished_at"] - second["started_at"] == pytest.approx(4.0)


def test_testing_mode_turns_backoff_waits_off_and_counts_them(tmp_path: Path) -> None:
    busy = Answer(503, code="overloaded", retry_after_s=40.0, latency_s=0.0)
    provider = MemoryProvider({"a": [server_error(), busy, server_error(), ok()]})
    with testing.testing() as waits:
        assert testing.is_testing()
        run = Run(tmp_path, provider, backoff_base_s=5.0, backoff_max_s=60.0).go([job("a")])
    assert not testing.is_testing()
    assert run.gaps("a") == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert run.elapsed == pytest.approx(0.0, abs=1e-6)
    # the waits asked for: jitter up to 5 s, the Retry-After exactly, jitter up to 20 s
    assert waits.count == 3 and waits.seconds[1] == 40.0
    assert 0.0 <= waits.seconds[0] <= 5.0 and 0.0 <= waits.seconds[2] <= 20.0
    assert run.of("a")[-1]["status"] == "ok"


def test_set_testing_switches_on_and_off(tmp_path: Path) -> None:
    testing.set_testing(True)
    try:
        run = Run(tmp_path, MemoryProvider({"a": [server_error(), ok()]}), backoff_base_s=50.0)
        run.go([job("a")])
        assert run.gaps("a") == pytest.approx([0.0], abs=1e-6)
    finally:
        testing.set_testing(False)
    run = Run(tmp_path, MemoryProvider({"a": [server_error(), server_error(), ok()]}))
    run.go([job("a")])
    assert run.settings.backoff_base_s == 1.0 and sum(run.gaps("a")) > 0.0


def test_a_stop_cuts_a_backoff_short(tmp_path: Path) -> None:
    busy = Answer(503, retry_after_s=50.0, latency_s=0.0)
    provider = MemoryProvider({"a": [busy]}, latency_s=5.0)
    run = Run(tmp_path, provider, concurrency=2, backoff_max_s=60.0)
    # job b's auth answer (after 5 s) stops the run while a waits out its 50 s
    provider.script = {"a": [busy], "b": [Answer(401, latency_s=5.0)]}
    run.go([job("a"), job("b")])
    assert run.control.reason is ErrorClass.AUTH
    assert run.elapsed == pytest.approx(5.0, abs=0.2)
    assert provider.sent["a"] == 1
    assert run.of("a")[-1]["status"] == "skipped"


def test_the_system_clock_reads_the_event_loops_time_and_the_systems_outside_one() -> None:
    from batchgen.clock import SYSTEM_CLOCK

    async def main() -> tuple[float, float]:
        await anyio.sleep(30)
        return SYSTEM_CLOCK.monotonic(), anyio.current_time()

    inside, loop_time = run_virtual(main)
    assert inside == loop_time  # the virtual loop's, 30 s on although no real time passed
    assert abs(SYSTEM_CLOCK.monotonic() - time.monotonic()) < 1.0


def test_a_sequence_script_answers_requests_in_arrival_order(tmp_path: Path) -> None:
    provider = MemoryProvider([content_policy(), server_error()], latency_s=1.0)
    run = Run(tmp_path, provider).go([job("a"), job("b")])
    assert provider.outcomes("a") == ["content_policy"]
    assert provider.outcomes("b") == ["server", "ok"]  # the default once the script ran out
    assert [c.job_id for c in provider.calls] == ["a", "b", "b"]
    # the refusal came at once (its own latency, 0), the 500 after the provider's 1 s
    assert [c.ended_at - c.sent_at for c in provider.calls[:2]] == pytest.approx(
        [0.0, 1.0], abs=1e-6
    )
    assert run.tally.ok_jobs == 1 and not provider.closed
