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
    limit.report(1.0, Report(ok=4, sent=4))
    limit.grant(1.0, 8, "a")
    assert limit.rate == pytest.approx(4.0)
    limit.report(3.0, Report(ok=20, sent=20))
    limit.grant(3.0, 8, "a")
    assert limit.per_minute == pytest.approx(300)  # 16/s would pass --rpm 300


def test_slow_start_grows_no_faster_than_the_answers_come() -> None:
    """Answers that take seconds: nothing has come back to say the rate is not too fast, so
    it stays within twice what was answered over the last second."""
    limit = SharedLimit(0.0)
    for t in (1.0, 2.0, 3.0):
        limit.grant(t, 8, "a")
    assert limit.rate == pytest.approx(2.0)  # no answer yet
    limit.report(3.5, Report(ok=1, sent=8))
    limit.grant(4.0, 8, "a")
    assert limit.rate == pytest.approx(2.0)  # twice the one answered in the last second
    limit.report(4.5, Report(ok=10, sent=2))
    limit.grant(5.0, 8, "a")
    assert limit.rate == pytest.approx(4.0)  # x2 a second: answers allow 20/s


def test_the_schedule_is_not_handed_out_far_ahead() -> None:
    limit = SharedLimit(0.0, rpm=60, adapt=False)  # 1/s: a grant of one permit a call
    offsets = []
    for _ in range(5):
        offsets.extend(limit.grant(0.0, 8, "a").offsets)
    refused = limit.grant(0.0, 8, "a")
    assert refused.offsets == ()
    assert refused.wait_s > 0
    assert max(offsets) <= HORIZON_S * 2 + 1.0


def _against_a_bucket(
    limit: SharedLimit,
    shards: int,
    seconds: float,
    per_s: float,
    latency: float,
    step: float = 0.01,
) -> tuple[list[float], list[float]]:
    """Shards sending every permit they hold against a server's token bucket of ``per_s``
    (a second of burst) that answers a 429 with no hint at once and a success after
    ``latency``: a shard drops what it holds on a 429 and asks again with its report (as
    ClusterGate does). Returns (sent, refused)."""
    answers: dict[int, list[float]] = {k: [] for k in range(shards)}
    tokens, last = per_s, 0.0
    held: dict[int, list[float]] = {k: [] for k in range(shards)}
    wake = dict.fromkeys(range(shards), 0.0)
    seen = {k: Report() for k in range(shards)}
    sent: list[float] = []
    refused: list[float] = []
    t = 0.0
    while t < seconds:
        tokens, last = min(per_s, tokens + (t - last) * per_s), t
        for k in range(shards):
            while answers[k] and answers[k][0] <= t:
                answers[k].pop(0)
                r = seen[k]
                seen[k] = Report(ok=r.ok + 1, throttled=r.throttled, sent=r.sent)
            while held[k] and held[k][0] <= t:
                at = held[k].pop(0)
                sent.append(at)
                r = seen[k]
                if tokens >= 1:
                    tokens -= 1
                    answers[k].append(t + latency)
                    seen[k] = Report(ok=r.ok, throttled=r.throttled, sent=r.sent + 1)
                    continue
                refused.append(at)
                seen[k] = Report(ok=r.ok, throttled=r.throttled + 1, sent=r.sent + 1)
                held[k] = []  # dropped: the actor gives new times
                wake[k] = t
            if not held[k] and t >= wake[k]:
                grant = limit.grant_after(t, seen[k], 64, f"s{k}")
                seen[k] = Report()
                held[k] = [t + o for o in grant.offsets]
                wake[k] = t + grant.wait_s
        t += step
    return sent, refused


@pytest.mark.parametrize("latency", [0.3, 3.0])
def test_with_no_hint_slow_start_ends_near_the_limit_and_few_are_refused(latency) -> None:
    """A server that states nothing (a gateway: a bare 429, no headers), answering in 0.3 s
    or 3 s: slow start finds the limit through the first 429s, the cut lands near what the
    server accepted, and the cluster then sends near the limit."""
    limit = SharedLimit(0.0)
    sent, refused = _against_a_bucket(limit, 4, 60.0, 20.0, latency)
    assert len(refused) / len(sent) <= 0.06, (len(refused), len(sent))
    late = [t for t in sent if 20.0 <= t < 60.0]
    assert 0.8 * 20 * 40 <= len(late) <= 1.05 * 20 * 40, len(late)
    per_s = Counter(int(t) for t in sent)
    assert max(per_s.values()) <= 2.0 * 20  # slow start's overshoot: at most twice, briefly
