"""Issue 21: the autopilot on realistic provider shapes (batchgen.sim.shapes), on the virtual
clock — minutes of a provider that answers in 5–20 s, in about a second of real time each.

Judged as the issue asks: efficiency = (work at the binding limit + one mean latency) / wall,
the share of requests answered 429, and no second after the first hint sending more than 2×
the limit's per-second share (for rate limits; a cap on tasks is judged by its peak)."""

from __future__ import annotations

import random

import pytest

from batchgen.limits.autopilot import AutopilotConfig
from batchgen.limits.pacing import slackened
from batchgen.sim.shapes import BY_KEY, SHAPES, Shape
from tests.autopilot_drive import ShapeRun, run_shape, scaled

KEYS = [s.key for s in SHAPES]


def _flags(shape: Shape) -> dict[str, object]:
    kw: dict[str, object] = {"rpm": shape.rpm, "ipm": shape.ipm}
    if shape.max_concurrent is not None:
        kw["concurrency"] = shape.max_concurrent
    return kw


def _check_learned(shape: Shape, run: ShapeRun) -> None:
    learned = run.learned
    if shape.ipm is not None:
        assert learned["ipm"] is not None and 0.9 * shape.ipm <= learned["ipm"] <= 1.1 * shape.ipm
    elif shape.rpm is not None:
        final = shape.schedule[-1][1] if shape.schedule else shape.rpm
        assert learned["rpm"] is not None and 0.9 * final <= learned["rpm"] <= 1.1 * final
    else:
        assert learned["concurrency"] == shape.max_concurrent


@pytest.mark.parametrize("key", KEYS)
def test_a_realistic_shape_with_no_flags(key: str) -> None:
    shape = BY_KEY[key]
    run = run_shape(shape)
    assert run.efficiency >= 0.90, run.row()
    assert run.share_429 <= (0.02 if shape.hint else 0.05), run.row()
    if shape.max_concurrent is None:
        assert run.burst_ratio <= 2.0, run.row()
    else:  # a cap on tasks: what is out never passes it by more than the one refused
        assert run.learned["peak_inflight"] <= 5 * shape.max_concurrent
    _check_learned(shape, run)


@pytest.mark.parametrize("key", KEYS)
def test_a_realistic_shape_with_its_limit_given(key: str) -> None:
    shape = BY_KEY[key]
    run = run_shape(shape, **_flags(shape))
    fixed = run_shape(shape, adapt=False, **{"concurrency": 128, **_flags(shape)})
    assert run.share_429 <= 0.01, run.row()
    assert run.efficiency >= 0.95, run.row()
    # never worse than fixed pacing at the same flags (on 429s; on time within noise)
    assert run.share_429 <= fixed.share_429 + 1e-9, (run.row(), fixed.row())
    assert run.efficiency >= fixed.efficiency - 0.03, (run.row(), fixed.row())


@pytest.mark.parametrize("key", KEYS)
def test_with_its_limit_given_at_the_bench_time_scale_a_shape_keeps_up_with_no_adapt(
    key: str,
) -> None:
    """Acceptance 3 as the real-time bench measures it (time × 0.25: latencies × 0.25, limits
    ÷ 0.25). The client's own clocks are not scaled (its rates move once a second), so what
    costs a second at the start weighs four times as much as on the unscaled shape: main's
    ramp of the requests' rate from one a second, under a given --ipm or --concurrency, and
    the first window's too-short latency put the autopilot 2.7-3.3 % behind --no-adapt on four
    of the seven shapes here (3.6 % on given-ipm-plain-10s in real time). Now within 1 % past
    the headroom it keeps under a limit the provider states and the time slack it keeps
    between the requests of a rate under one a second (pacing.slack_s: 0.1 s of 3 s at
    ipm5-20s, nothing at the others; --no-adapt holds the flag exactly, and this path has no
    jitter to refuse it for)."""
    shape = scaled(BY_KEY[key], 0.25)
    run = run_shape(shape, **_flags(shape))
    fixed = run_shape(shape, adapt=False, **{"concurrency": 128, **_flags(shape)})
    assert run.share_429 <= fixed.share_429 + 1e-9, (run.row(), fixed.row())
    headroom = AutopilotConfig().headroom
    limit = shape.ipm if shape.ipm is not None else shape.rpm
    slack = slackened(limit) / limit if limit is not None else 1.0
    kept = fixed.efficiency * headroom * slack - 0.01
    assert run.efficiency >= kept, (run.row(), fixed.row())


def test_the_ramp_is_clocked_by_answers_an_instant_server_is_at_full_speed_at_once() -> None:
    """No limit at all and answers in 2 ms: the rate doubles per few answers' time, not per
    wall second, so thousands of requests a minute are reached in well under a second."""
    instant = Shape(
        "instant",
        "no limit, 2 ms",
        jobs=3000,
        latency_median=0.002,
        latency_sigma=0.1,
        max_concurrent=None,
        rpm=1e9,
    )
    run = run_shape(instant)
    first_second = run.per_second[0] if run.per_second else 0
    assert first_second >= 1500, run.per_second[:3]
    assert run.refused == 0


def test_a_long_latency_run_ramps_without_a_burst_when_the_limit_is_announced() -> None:
    """The issue's first trace: 600/min announced, 5 s latency. No second after the first
    answer sends more than 2× the limit's share, and the pool reaches the limit as soon as
    the first answer says it (not after the in-flight limit has doubled its way up)."""
    shape = BY_KEY["rpm-headers-5s"]
    run = run_shape(shape)
    per_s = shape.limit_per_s()
    assert max(run.per_second[6:]) <= 2 * per_s
    # from the first answer on (~5 s), every 10 s sends at least 90 % of the limit
    for start in range(10, int(run.took) - 30, 10):
        assert sum(run.per_second[start : start + 10]) >= 0.9 * 10 * per_s, start


def test_when_answers_come_before_the_first_429_the_inflight_limit_follows_the_rate() -> None:
    """The bench's rpm-plain-15s trace (time × 0.25: 1,200 req/min at 3.75 s): the first answer
    came before the rate had found the limit. The in-flight limit then grew one slot per answer
    (doubling once per latency: 8 in flight for 10 s, the limit reached after 75 s of 360) while
    the rate, not used, waited for it. Here: 3,000 req/min at 2 s, no headers, whole-second
    Retry-After — the rate needs ~6 s of doubling, answers come from the 2nd. The in-flight
    limit keeps what the climbing rate needs (rate × latency) while the latency stays at its
    floor, so the pool is at the limit's share within 6 s."""
    shape = Shape(
        "fast-answers",
        "3000 req/min, no headers, 2 s",
        jobs=3000,
        rpm=3000,
        retry_after="seconds",
        latency_median=2.0,
    )
    run = run_shape(shape)
    per_s = shape.limit_per_s()
    reached = next(i for i, c in enumerate(run.per_second) if c >= 0.8 * per_s)
    assert reached <= 6, run.per_second[:12]  # one slot per answer: the 10th second
    assert run.efficiency >= 0.92, run.row()
    assert run.share_429 <= 0.05 and run.burst_ratio <= 2.0, run.row()


def test_a_given_ipm_is_used_from_the_first_second() -> None:
    """The bench's given-ipm-plain-10s (time × 0.25: 960 img/min, n = 1/2/4, 2.6 s): with
    --ipm given, the requests' own rate (no --rpm) slow-started from one request a second, so
    the first seconds sent 1, 6, 8 images of 16 a second and the run trailed --no-adapt by
    3 %. A request carries at least one image: the given --ipm bounds the requests too."""
    shape = scaled(BY_KEY["ipm-plain-10s"], 0.25)
    run = run_shape(shape, ipm=shape.ipm)
    fixed = run_shape(shape, adapt=False, concurrency=128, ipm=shape.ipm)
    per_s = shape.limit_per_s()
    assert sum(run.per_second[:3]) >= 0.8 * 3 * per_s, run.per_second[:6]
    assert run.share_429 == 0.0, run.row()
    assert run.efficiency >= fixed.efficiency - 0.01, (run.row(), fixed.row())


def test_with_a_given_rpm_the_first_answers_do_not_leave_the_pool_short_of_slots() -> None:
    """The bench's given-rpm-headers-5s (time × 0.25: 2,400 req/min in headers, 1.25 s). The
    first window of answers holds only the fast ones (the slow ones are still out), so rate ×
    its median gave too few slots for a second (33 sent of 40). (The announced limit's
    headroom, 0.985, stays on a given --rpm equal to it: held at exactly the limit, a tiny
    limit is refused for arrival jitter, 6 of 66 on given-ipm5-20s in real time.)"""
    shape = scaled(BY_KEY["rpm-headers-5s"], 0.25)
    run = run_shape(shape, rpm=shape.rpm)
    per_s = shape.limit_per_s()
    # every whole second until the last jobs are out sends the limit's share (less headroom)
    full = run.per_second[: int(shape.work_s()) - 1]
    assert min(full) >= 0.95 * per_s, run.per_second[:6]
    assert run.share_429 == 0.0, run.row()


def test_a_given_concurrency_is_filled_in_the_first_second() -> None:
    """The bench's given-conc16-8s (time × 0.25: 16 tasks at once, 2 s, wide jitter): with
    --concurrency 16 given and no rate flag, the requests' rate slow-started from one a second
    while --no-adapt sent all 16 at once, 3.4 % behind it in real time. The given cap now sets
    where the ramp starts: its slots filled in the first second."""
    shape = scaled(BY_KEY["conc16-8s"], 0.25)
    assert shape.max_concurrent is not None
    run = run_shape(shape, concurrency=shape.max_concurrent)
    fixed = run_shape(shape, adapt=False, concurrency=shape.max_concurrent)
    assert run.per_second[0] >= shape.max_concurrent, run.per_second[:6]
    assert run.share_429 == 0.0, run.row()
    assert run.efficiency >= fixed.efficiency - 0.01, (run.row(), fixed.row())


def _real_path(index: int, rng: random.Random) -> float:
    """The way to the server as the real-time bench's loopback shows it (given-ipm5-20s, the
    client's log against the simulator's record): the run's first request 26 ms slower than
    the rest (a new connection, first-use costs), a few ms of jitter, and now and then a
    request 70 ms late (a busy loop on a loaded machine)."""
    first = 0.026 if index == 0 else 0.0
    late = 0.07 if rng.random() < 0.05 else 0.0
    return first + late + rng.uniform(0.0, 0.005)


@pytest.mark.parametrize("given", [True, False])
def test_a_one_token_bucket_refuses_nothing_for_the_way_there(given: bool) -> None:
    """given-ipm5-20s at the bench's time scale (20 images/min, one token in the server's
    bucket: any two arrivals under 3 s apart is a 429). Sent exactly 3 s apart, the second
    request reached the server 2.975 s after the first (the first was 26 ms slower on its way)
    and was refused in every real-time run; with the 0.985 headroom that followed (46 ms a
    spacing), a request 70 ms late made the next one a 429 again. The gate's per-token time
    slack (pacing.slack_s) keeps every arrival a spacing apart: no 429 with the limit given,
    and with no flags only the one that finds the limit."""
    shape = scaled(BY_KEY["ipm5-20s"], 0.25)
    flags: dict[str, object] = {"ipm": shape.ipm} if given else {}
    runs = [run_shape(shape, seed, _real_path, **flags) for seed in (1, 2, 3)]
    for run in runs:
        assert run.refused == (0 if given else 1), run.row()
        assert run.efficiency >= 0.95, run.row()
        if not given:  # the limit came in the 429's text, and what was learned says so
            assert run.learned["ipm_source"] == "429 text", run.learned
