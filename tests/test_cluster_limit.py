"""The cluster's shared limit (batchgen.cluster.limit.SharedLimit) without Ray: send times in
chunks that continue one schedule, the rate from an announced limit, cuts on 429s, pauses.
Time is a number passed in: no clock, no sleeps."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest

from batchgen.cluster.limit import CUT, HORIZON_S, MARGIN, Report, SharedLimit


def _sends(limit: SharedLimit, shards: int, seconds: float, step: float = 0.01) -> list[float]:
    """Each shard asks for permits whenever the times it holds run out; returns every send."""
    held: dict[int, list[float]] = {k: [] for k in range(shards)}
    wake = dict.fromkeys(range(shards), 0.0)
    sent: list[float] = []
    t = 0.0
    while t < seconds:
        for k in range(shards):
            while held[k] and held[k][0] <= t:
                sent.append(held[k].pop(0))
            if not held[k] and t >= wake[k]:
                grant = limit.grant(t, 64, f"s{k}")
                held[k] = [t + o for o in grant.offsets]
                wake[k] = t + grant.wait_s
        t += step
    return sent


def test_chunks_continue_one_schedule_at_the_rate() -> None:
    limit = SharedLimit(0.0, rpm=600, adapt=False)  # 10/s, fixed
    first = limit.grant(0.0, 64, "a")
    second = limit.grant(0.0, 64, "b")
    assert len(first.offsets) == math.floor(10 * HORIZON_S)
    times = first.offsets + second.offsets
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.1}  # the second shard's chunk starts where the first one's ended


def test_many_shards_send_the_rate_not_a_multiple() -> None:
    limit = SharedLimit(0.0, rpm=1200, adapt=False)
    sent = _sends(limit, shards=4, seconds=20.0)
    per_s = Counter(int(t) for t in sent)
    assert max(per_s.values()) <= 21  # 20/s, whichever shard sends
    assert sum(per_s[s] for s in range(2, 19)) >= 0.98 * 20 * 17
    assert limit.calls / limit.granted < 0.25  # the actor is called per chunk, not per request


def test_an_announced_limit_sets_the_rate_below_it() -> None:
    limit = SharedLimit(0.0)
    limit.grant(0.0, 8, "a")
    limit.report(0.5, Report(ok=3, announced_rpm=1200))
    assert limit.per_minute == pytest.approx(1200 * MARGIN)
    sent = _sends(limit, shards=4, seconds=10.0)
    assert len([t for t in sent if 1.0 <= t < 9.0]) == pytest.approx(8 * 20 * MARGIN, abs=3)


def test_a_429_cuts_once_a_second_and_its_wait_moves_the_schedule() -> None:
    limit = SharedLimit(0.0, rpm=600)
    limit.report(0.0, Report(announced_rpm=600))
    rate = limit.rate
    limit.report(1.0, Report(throttled=5, retry_after_s=2.0))
    limit.report(1.2, Report(throttled=5))
    assert limit.rate == pytest.approx(rate * CUT)  # one cut for the burst of 429s
    early = limit.grant(1.2, 8, "a")  # nothing before the Retry-After has passed
    assert early.offsets == ()
    grant = limit.grant(1.2 + early.wait_s, 8, "a")
    assert 1.2 + early.wait_s + grant.offsets[0] == pytest.approx(3.0)
    before = limit.rate  # climbing again a second after the cut
    assert rate * CUT < before < rate
    limit.report(3.0, Report(throttled=1))
    assert limit.rate == pytest.approx(before * CUT)


def test_slow_start_doubles_a_second_until_a_hint_and_never_passes_the_flag() -> None:
    limit = SharedLimit(0.0, rpm=300)
    limit.grant(0.0, 8, "a")
    limit.grant(1.0, 8, "a")
    assert limit.rate == pytest.approx(4.0)
    limit.grant(3.0, 8, "a")
    assert limit.per_minute == pytest.approx(300)  # 16/s would pass --rpm 300


def test_the_schedule_is_not_handed_out_far_ahead() -> None:
    limit = SharedLimit(0.0, rpm=60, adapt=False)  # 1/s: a grant of one permit a call
    offsets = []
    for _ in range(5):
        offsets.extend(limit.grant(0.0, 8, "a").offsets)
    refused = limit.grant(0.0, 8, "a")
    assert refused.offsets == ()
    assert refused.wait_s > 0
    assert max(offsets) <= HORIZON_S * 2 + 1.0
