"""The cluster's shared limit (batchgen.cluster.limit.SharedLimit) without Ray: send times in
chunks that continue one schedule, the rate from an announced limit, cuts on 429s, pauses.
Time is a number passed in: no clock, no sleeps."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from batchgen.cluster.gate import Seen
from batchgen.cluster.limit import CONFIG, HORIZON_S, MARGIN, Report, SharedLimit
from batchgen.limits import RateLimiter
from batchgen.sim.responses import server_rate_limited
from tests.vtime import run_virtual


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


def test_a_429_cuts_once_an_episode_and_its_wait_moves_the_schedule() -> None:
    limit = SharedLimit(0.0, rpm=600)
    limit.grant(0.0, 1, "a")  # one shard: the schedule runs a second ahead at most
    limit.report(0.0, Report(announced_rpm=600))
    rate = limit.rate
    # a flag at the stated limit is the user's to hold, until a 429 comes at it (as a local
    # gate holds it: limits/autopilot.RateControl.ceiling); the margin applies after one
    assert rate == pytest.approx(600 / 60)
    limit.report(1.0, Report(throttled=5, retry_after_s=2.5))
    limit.report(1.2, Report(throttled=5))
    assert limit.rate == pytest.approx(rate * CONFIG.decrease)  # one cut for the burst
    early = limit.grant(1.2, 8, "a")  # nothing before the Retry-After has passed
    assert early.offsets == ()
    grant = limit.grant(1.2 + early.wait_s, 8, "a")
    assert 1.2 + early.wait_s + grant.offsets[0] == pytest.approx(3.5)
    before = limit.rate  # climbing back toward the rate it was cut at
    assert rate * CONFIG.decrease < before < rate
    limit.report(4.0, Report(throttled=1))
    assert limit.rate == pytest.approx(before * CONFIG.decrease)


def test_a_whole_second_retry_after_holds_the_schedule_a_second_less() -> None:
    """A Retry-After of "1" may mean 50 ms (RFC 9110 rounds up): the schedule holds for what is
    surely left, as a local gate does, and the cut rate spaces what follows."""
    limit = SharedLimit(0.0, rpm=600)
    limit.report(1.0, Report(throttled=1, retry_after_s=3.0))
    assert limit.next_free == pytest.approx(3.0)
    limit.report(5.0, Report(throttled=1, retry_after_s=1.0))
    assert limit.next_free == pytest.approx(5.0 + 1 / limit.rate)


def test_slow_start_doubles_while_the_rate_is_used_and_a_flag_is_where_it_starts() -> None:
    assert SharedLimit(0.0).per_minute == pytest.approx(CONFIG.start_rpm)
    limit = SharedLimit(0.0, config=replace(CONFIG, start_rpm=600))
    sent = _sends(limit, shards=2, seconds=3.05)
    assert limit.per_minute >= 4 * 600  # x2 a second while every permit is taken
    assert len(sent) > 3 * 10  # more than the start rate sent (the schedule runs ahead)
    idle = SharedLimit(0.0, config=replace(CONFIG, start_rpm=600))
    for t in (1.0, 2.0, 3.0, 4.0):  # a permit asked for a second: most of the rate unused
        idle.grant(t, 1, "a")
    assert idle.per_minute == pytest.approx(600)
    assert SharedLimit(0.0, rpm=300).per_minute == pytest.approx(300)  # --rpm: start there


def test_slow_start_is_clocked_by_the_answers() -> None:
    """Each success adds a request per its latency (as TCP's window grows a segment per
    acknowledgement), at most doubling: two answers in 1 s take 1/s to 3/s; three in 10 s
    add a request per 10 s each."""
    limit = SharedLimit(0.0)
    limit.report(0.1, Report(ok=2, ok_latency_s=2.0))
    assert limit.per_minute == pytest.approx(CONFIG.start_rpm + 2 * 60)
    limit.report(0.2, Report(ok=3, ok_latency_s=30.0))
    assert limit.per_minute == pytest.approx(CONFIG.start_rpm + 2 * 60 + 3 * 6)


def test_the_sends_measured_are_the_schedules_when_their_time_comes() -> None:
    """The rates measure what went out at the send times handed out (as a local gate's
    bucket counts its tokens), not the shards' reports a chunk later: a 429 in slow start
    cuts to half of what the server saw over the last two seconds."""
    limit = SharedLimit(0.0, config=replace(CONFIG, start_rpm=600))
    sent = _sends(limit, shards=4, seconds=4.0)
    server_saw = len([t for t in sent if 2.0 <= t <= 4.0]) / 2.0
    assert limit.requests.sent_rate(4.0, 2.0) / 60 == pytest.approx(server_saw)
    assert limit.rate > 1.2 * server_saw  # the schedule runs ahead of the sends
    limit.report(4.0, Report(throttled=1))
    assert limit.rate == pytest.approx(server_saw * CONFIG.ss_decrease, rel=0.05)


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
                seen[k] = replace(r, ok=r.ok + 1, ok_latency_s=r.ok_latency_s + latency)
            while held[k] and held[k][0] <= t:
                at = held[k].pop(0)
                sent.append(at)
                r = seen[k]
                if tokens >= 1:
                    tokens -= 1
                    answers[k].append(t + latency)
                    seen[k] = replace(r, sent=r.sent + 1)
                    continue
                refused.append(at)
                seen[k] = replace(r, throttled=r.throttled + 1, sent=r.sent + 1, fastest_s=0.001)
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


def test_the_progress_is_each_shards_last_tally_added_up() -> None:
    """The shards send their pool's tally (absolute) with each call; the driver's line adds up
    the last of each, so a shard that calls often is not counted twice."""
    limit = SharedLimit(0.0, rpm=600, adapt=False)
    limit.grant_after(1.0, Report(sent=3, jobs_done=3), 8, "s1")
    limit.grant_after(1.5, Report(sent=2, jobs_done=5, jobs_failed=1), 8, "s1")
    limit.grant_after(1.6, Report(sent=4, throttled=1, jobs_done=4), 8, "s2")
    assert limit.progress() == {
        "done": 9,
        "failed": 1,
        "sent": 9,
        "throttled": 1,
        "per_minute": pytest.approx(600),
    }


@pytest.mark.parametrize("kind", ["requests", "images"])
@pytest.mark.parametrize("stated_in", ["429 text", "headers"])
def test_a_stated_limit_is_learned_as_from_where_it_was_stated(stated_in, kind) -> None:
    """A limit a shard read in the simulator's 429 text (no headers) is the cluster's as from
    "429 text", one from x-ratelimit headers as from "headers": what a local gate records
    for the same answer (its run.json's rpm_source / ipm_source)."""
    if stated_in == "429 text":
        refused = server_rate_limited("gpt-image-1", kind, 600, 2.0)
        headers, message, code = None, refused.message, refused.code or ""
    else:
        headers, message, code = {f"x-ratelimit-limit-{kind}": "600"}, "", ""
    seen = Seen()
    seen.hint(headers, message, code)
    limit = SharedLimit(0.0)
    limit.report(0.5, seen.take())
    control = limit.requests if kind == "requests" else limit.images

    async def local_gate() -> dict[str, Any]:  # the same answer, to a local run's gate
        local = RateLimiter()
        if message:
            local.on_throttled(None, None, headers, message, code)
        else:
            local.on_ok(None, headers)
        return local.learned()

    key = "rpm" if kind == "requests" else "ipm"
    assert control.announced == 600.0 and control.source == stated_in
    assert run_virtual(local_gate)[f"{key}_source"] == stated_in
    # a later answer's headers repeat the limit: where it was first stated stays
    seen.hint({f"x-ratelimit-limit-{kind}": "600"})
    limit.report(1.0, seen.take())
    assert control.source == stated_in
