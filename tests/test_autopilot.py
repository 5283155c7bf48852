"""The autopilot on the virtual clock (tests/vtime.py): each control in isolation (slow start,
decrease, the pause floor, in-flight growth and shrink, header and message learning), then
whole scenarios against the simulator's own token buckets (tests/autopilot_drive.py), each
a minute or more of virtual time in well under a second of real time."""

from __future__ import annotations

import itertools
import math

import anyio
import pytest

from batchgen.limits import RateLimiter, Ticket
from batchgen.limits.autopilot import AutopilotConfig, InflightControl, RateControl
from batchgen.limits.hints import read_hint
from batchgen.limits.pacing import slack_s, slackened
from tests.autopilot_drive import Provider, drive, rate
from tests.vtime import run_virtual

# -- one control at a time ---------------------------------------------------------------------


def _used(control: RateControl, now: float) -> None:
    """Report the rate as fully used over the last second."""
    per_s = max(1, int(control.current / 60))
    for i in range(per_s):
        control.sent(now - i / per_s, 1)


def test_slow_start_doubles_each_second_while_used_and_stops_when_not() -> None:
    cfg = AutopilotConfig()
    control = RateControl("requests", None, cfg, now=0.0)
    seen = []
    for t in range(1, 5):
        _used(control, float(t))
        control.tick(float(t))
        seen.append(control.current)
    assert seen == [120.0, 240.0, 480.0, 960.0]
    control.tick(5.0)  # nothing sent in the last second: an unused rate does not grow
    assert control.current == 960.0


def test_first_429_ends_slow_start_at_half_the_rate_sent_then_climbs_back_under_it() -> None:
    cfg = AutopilotConfig()
    control = RateControl("requests", None, cfg, now=0.0)
    control.current = 2400.0
    for i in range(60):  # 1,800/min actually sent over the last 2 s
        control.sent(10.0 - i / 30, 1)
    assert control.on_loss(10.0)
    assert not control.on_loss(10.2)  # the same burst of 429s: one cut only
    assert control.w_max == pytest.approx(1800.0, rel=0.02)
    assert control.current == pytest.approx(900.0, rel=0.02)
    for t in range(11, 25):  # before hold_s has passed at the plateau
        _used(control, float(t))
        control.tick(float(t))
    # closes the gap to the plateau just under the rate that was refused, never above it
    assert control.current == pytest.approx(cfg.plateau * control.w_max, rel=0.01)


def test_a_later_429_cuts_to_decrease_times_the_rate_then_probes_only_after_holding() -> None:
    cfg = AutopilotConfig(hold_s=10.0)
    control = RateControl("requests", None, cfg, now=0.0)
    control.slow_start = False
    control.current, control.w_max = 1000.0, 1000.0
    control.on_loss(0.0)
    assert control.current == pytest.approx(cfg.decrease * 1000.0)
    plateau = cfg.plateau * 1000.0
    at: dict[int, float] = {}
    for t in range(1, 40):
        _used(control, float(t))
        control.tick(float(t))
        at[t] = control.current
    assert at[8] == pytest.approx(plateau, rel=0.01)
    assert at[10] <= plateau * 1.001  # held under the refused rate ...
    assert at[39] > 1000.0  # ... then probed above it: a limit that rose is found


def test_a_user_rpm_is_a_ceiling_the_autopilot_never_passes() -> None:
    cfg = AutopilotConfig(hold_s=1.0)
    control = RateControl("requests", 600.0, cfg, now=0.0)
    assert control.current == 600.0 and not control.slow_start
    control.on_loss(0.0)
    assert control.current < 600.0
    for t in range(1, 120):
        _used(control, float(t))
        control.tick(float(t))
        assert control.current <= 600.0
    assert control.current == 600.0  # probed back up to the cap, and no further


def test_headers_set_the_ceiling_and_a_moving_limit_moves_the_rate() -> None:
    cfg = AutopilotConfig()
    control = RateControl("requests", None, cfg, now=0.0)
    control.announce(1200.0, 0.5)  # slow start ends: the provider said where to go
    assert control.current == pytest.approx(1200 * cfg.headroom)
    assert control.source == "headers"
    control.announce(600.0, 30.0)
    assert control.current == pytest.approx(600 * cfg.headroom)
    control.announce(1200.0, 60.0)
    assert control.current == pytest.approx(1200 * cfg.headroom)
    assert control.learned() == 1200.0


def test_hints_from_headers_and_openai_style_messages() -> None:
    hint = read_hint(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-limit-images": "50",
            "x-ratelimit-remaining-images": "7",
        }
    )
    assert hint.limits == {"requests": 500.0, "images": 50.0}
    assert hint.exhausted == "requests"
    msg = (
        "Rate limit reached for gpt-image-1 in organization org-x on images per min (IPM): "
        "Limit 1,000, Used 1000, Requested 1. Please try again in 6ms."
    )
    hint = read_hint({}, msg)
    assert hint.limits == {"images": 1000.0} and hint.exhausted == "images"
    assert hint.in_text == {"images"}  # stated in the text only: what learned it says so
    both = read_hint({"x-ratelimit-limit-images": "900"}, msg)
    assert both.limits == {"images": 900.0} and both.in_text == frozenset()  # headers first
    assert read_hint({}, "Too many concurrent requests").concurrency
    assert read_hint({}, "Too Many Requests") == read_hint(None)
    # nonsense announces nothing: zero, negative, not a number, absurdly large
    for bad in ("0", "-5", "nan", "inf", "1e300", "many"):
        assert read_hint({"x-ratelimit-limit-requests": bad}).limits == {}


def test_inflight_slow_start_then_one_at_a_time_and_shrink_under_a_queue() -> None:
    cfg = AutopilotConfig(start_inflight=4)
    control = InflightControl(256, cfg, now=0.0)
    clock = [0.0]

    def window(latency: float, full: bool = True) -> int:
        """One measuring window: five answers 0.1 s apart; returns the slots after it."""
        if full:
            control.sent_at(control.slots)
        for _ in range(5):
            clock[0] += 0.1
            control.on_ok(clock[0], control.slots, latency)
        return control.slots

    # full slots, flat latency: one slot more per answer (doubling once a latency, as TCP's
    # slow start is clocked by acknowledgements)
    assert [window(0.3) for _ in range(3)] == [9, 14, 19]
    assert window(0.3, full=False) == 19  # not every slot used: no growth
    assert window(0.9) == 17  # latency three times its floor, every slot taken: a queue, × 0.9
    assert not control.slow_start
    assert [window(0.3) for _ in range(3)] == [18, 19, 20]  # then one at a time per window
    assert control.learned() == 20 and control.shrinks == 1


def test_inflight_drops_under_a_refused_count_and_probes_it_ever_more_rarely() -> None:
    cfg = AutopilotConfig(start_inflight=32, probe_wait_s=5.0)
    control = InflightControl(256, cfg, now=0.0)
    control.on_refused(0.0, inflight=25)
    control.on_refused(0.001, inflight=31)  # the rest of the same burst: no further cut
    assert control.slots == 24
    probes = []
    for step in range(1, 400):
        now = step * 0.5
        control.sent_at(control.slots)
        for i in range(6):
            control.on_ok(now + i * 0.01, control.slots, 0.3)
        if control.slots > 24:
            probes.append(now)
            control.on_refused(now, inflight=control.slots)
    # each probe above the refused count waits twice as long as the one before
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert len(probes) >= 3 and all(b > a for a, b in itertools.pairwise(gaps))
    assert control.learned() == 24


def test_pause_honours_the_hint_but_never_less_than_one_requests_spacing() -> None:
    async def main() -> tuple[float, float, float, float]:
        limiter = RateLimiter(rpm=120)  # 0.5 s between requests
        tiny = limiter.on_throttled(None, 0.006)  # OpenAI's "try again in 6ms"
        await anyio.sleep(5)
        long = limiter.on_throttled(None, 2.5)
        await anyio.sleep(5)
        whole = limiter.on_throttled(None, 3.0)  # whole seconds: rounded up, maybe by ~1 s
        await anyio.sleep(5)
        none = limiter.on_throttled(None, None)
        return tiny, long, whole, none

    tiny, long, whole, none = run_virtual(main)
    spacing = 60.0 / (120 * AutopilotConfig().decrease)  # the rate after the cut
    assert tiny == pytest.approx(spacing, rel=0.01)
    assert long == 2.5
    assert whole == 2.0
    assert none == pytest.approx(60.0 / (120 * AutopilotConfig().decrease ** 4), rel=0.01)


def test_a_no_hint_429_is_told_apart_by_the_in_flight_count_it_was_sent_at() -> None:
    async def main() -> tuple[int, float, int, float]:
        limiter = RateLimiter(concurrency=64)
        limiter.inflight.limit = 10
        # the first no-hint 429 of a run is the rate's: one came (and cut) a while ago
        assert limiter._guess_kind(Ticket(10, anyio.current_time()), anyio.current_time()) == (
            "requests"
        )
        limiter.requests.control.on_loss(anyio.current_time())  # type: ignore[union-attr]
        await anyio.sleep(5)
        for _ in range(3):
            limiter.inflight.on_ok(anyio.current_time(), 8, 0.3)  # successes at 8 out
        before = limiter.requests.control.current  # type: ignore[union-attr]
        limiter.on_throttled(Ticket(10, anyio.current_time()), None)  # all full, above 8
        after_conc = (limiter.inflight.slots, limiter.requests.control.current)  # type: ignore[union-attr]
        await anyio.sleep(2)
        limiter.on_throttled(Ticket(5, anyio.current_time()), None)  # where successes went
        return (
            after_conc[0],
            after_conc[1] / before,
            limiter.inflight.slots,
            (
                limiter.requests.control.current / before  # type: ignore[union-attr]
            ),
        )

    slots, rate_kept, slots_after, rate_cut = run_virtual(main)
    assert slots == 9 and rate_kept == 1.0  # concurrency: the slots drop, the rate stays
    assert slots_after == 9 and rate_cut < 1.0  # requests/min: the rate drops, the slots stay


# -- whole scenarios against the simulator's buckets --------------------------------------------


def _scenario(
    provider_kw: dict, ns: list[int], **limiter_kw: object
) -> tuple[Provider, RateLimiter, float]:
    async def main() -> tuple[Provider, RateLimiter, float]:
        provider = Provider(**provider_kw)
        limiter = RateLimiter(**limiter_kw)  # type: ignore[arg-type]
        took = await drive(limiter, provider, ns)
        return provider, limiter, took

    return run_virtual(main)


def _share(p: Provider) -> float:
    return p.refused / (p.refused + len(p.accepted))


@pytest.mark.parametrize("retry_after", ["seconds", "none"])
def test_no_headers_finds_the_limit_from_429s_alone(retry_after: str) -> None:
    p, limiter, took = _scenario(
        {"rpm": 1200, "headers": False, "retry_after": retry_after}, [1] * 1240
    )
    assert len(p.accepted) * 60 / took >= 0.9 * 1200
    assert _share(p) <= 0.03
    learned = limiter.learned()
    assert learned["rpm_source"] == "429"
    assert 0.9 * 1200 <= learned["rpm"] <= 1.1 * 1200


def test_announced_limit_with_tiny_retry_after_ms() -> None:
    p, limiter, took = _scenario({"rpm": 1200, "retry_after": "ms"}, [1] * 1240)
    assert len(p.accepted) * 60 / took >= 0.93 * 1200
    assert _share(p) <= 0.02
    assert limiter.learned()["rpm"] == 1200.0


def test_a_concurrency_cap_with_no_hint_is_found_and_held() -> None:
    p, limiter, took = _scenario(
        {"max_concurrent": 24, "headers": False, "retry_after": "none"}, [1] * 4800
    )
    assert len(p.accepted) / took >= 0.85 * 24 / 0.3
    assert _share(p) <= 0.05
    assert limiter.learned()["concurrency"] == 24
    assert limiter.learned()["rpm"] is None  # no rate was limited


def test_images_per_minute_with_mixed_n() -> None:
    p, limiter, took = _scenario({"ipm": 2400}, [1, 2, 4] * 360)
    images = sum(n for _, n in p.accepted)
    assert images * 60 / took >= 0.9 * 2400
    assert limiter.learned()["ipm"] == 2400.0


def test_a_limit_that_halves_and_comes_back_is_followed_both_ways() -> None:
    p, _limiter, _took = _scenario(
        {"rpm": 1200, "schedule": ((30.0, 600.0), (60.0, 1200.0))}, [1] * 1500
    )
    t0 = p.accepted[0][0]
    assert rate(p.accepted, t0 + 40, t0 + 60) >= 0.85 * 600
    assert rate(p.accepted, t0 + 70, t0 + 85) >= 0.85 * 1200
    assert _share(p) <= 0.05


def test_a_given_rpm_starts_there_at_once() -> None:
    p, _limiter, _took = _scenario({"rpm": 1200, "retry_after": "ms"}, [1] * 600, rpm=1200)
    t0 = p.accepted[0][0]
    assert rate(p.accepted, t0, t0 + 10) >= 0.95 * 1200
    assert _share(p) <= 0.005


def test_latency_that_triples_does_not_starve_a_pool_paced_by_a_known_rate() -> None:
    """A busy client's own queueing inflates every latency it measures. With a rate limit
    known (here announced), the in-flight limit keeps what that rate needs (rate × latency)."""
    start: list[float] = []

    def latency(rng: object) -> float:
        now = anyio.current_time()
        start.append(now) if not start else None
        return 0.3 if now - start[0] < 5 else 0.9

    p, limiter, _took = _scenario({"rpm": 1200, "latency": latency}, [1] * 1300, concurrency=64)
    t0 = p.accepted[0][0]
    assert rate(p.accepted, t0 + 10, t0 + 50) >= 0.95 * 1200 * 0.985
    assert limiter.inflight.peak >= 18  # 19.7/s × 0.9 s


def test_latency_that_rises_for_good_is_taken_as_the_new_floor_after_three_cuts() -> None:
    cfg = AutopilotConfig(start_inflight=32)
    control = InflightControl(256, cfg, now=0.0)
    control.slow_start = False
    clock = [0.0]

    def window(latency: float) -> int:
        control.sent_at(control.slots)
        for _ in range(5):
            clock[0] += 0.1
            control.on_ok(clock[0], control.slots, latency)
        return control.slots

    assert window(0.3) == 33
    slots = [window(1.0) for _ in range(6)]  # three times slower from now on, whatever we do
    assert slots[:3] == [29, 26, 24]  # three cuts (× 0.9 each) ...
    assert slots[3] == 24 and slots[4:] == [25, 26]  # ... then the new floor, and growth again


def test_a_429_text_that_says_when_to_try_again_is_read_as_the_wait() -> None:
    """OpenAI's images 429s often carry no Retry-After header, only the text."""
    text = (
        "Rate limit reached for gpt-image-1 in organization org-x on images per min (IPM): "
        "Limit 5, Used 5, Requested 1. Please try again in 12s. Visit https://…"
    )
    hint = read_hint(None, text)
    assert hint.wait_s == 12.0 and hint.limits == {"images": 5.0}
    assert read_hint(None, "... Please try again in 566ms.").wait_s == 0.566
    assert read_hint(None, "Rate limit exceeded").wait_s is None

    async def main() -> float:
        limiter = RateLimiter()
        return limiter.on_throttled(Ticket(1, anyio.current_time()), None, None, text)

    held = run_virtual(main)
    # the pool waits the 12 s the text asks (the 5 img/min spacing, 12.2 s, is longer still)
    assert held == pytest.approx(60.0 / (5 * AutopilotConfig().headroom), rel=0.01)


def test_a_fixed_inflight_limit_keeps_no_memory_per_answer() -> None:
    """--no-adapt on a ten-million-job batch: the fixed in-flight control measures nothing, so
    its memory does not grow with the answers (it kept every latency in a list that no
    window ever emptied: ~32 bytes an answer)."""
    import tracemalloc

    control = InflightControl(64, AutopilotConfig(), now=0.0, fixed=True)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(50_000):
            control.on_ok(i * 0.01, 64, 0.5 + (i % 7) * 0.01)
        grown = sum(
            stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename")
        )
    finally:
        tracemalloc.stop()
    assert grown < 100_000, grown  # 50,000 answers kept would be over 400 kB
    assert control.slots == 64


def test_a_flag_the_provider_states_is_held_until_a_429_comes_at_it() -> None:
    """--rpm equal to the limit the headers state: the flag is held as given (as --no-adapt
    holds it), not 0.985 of it; once a 429 comes for that kind the headroom holds, so a tiny
    limit held exactly is not refused again and again for arrival jitter (given-ipm5-20s in
    real time: 5-6 of 66 refused without the headroom, 1 of 61 with it)."""
    cfg = AutopilotConfig()
    control = RateControl("images", 20.0, cfg, now=0.0)
    control.announce(20.0, 1.0)
    assert control.current == 20.0 and control.ceiling == 20.0
    control.mark_refused()  # a 429 whose stated limit explains it: no cut, the headroom
    assert control.current == pytest.approx(20.0 * cfg.headroom)
    # a flag over the stated limit gets the headroom at once, as before
    over = RateControl("requests", 1300.0, cfg, now=0.0)
    over.announce(1200.0, 1.0)
    assert over.current == pytest.approx(1200.0 * cfg.headroom)


def test_the_time_slack_is_kept_only_where_a_window_holds_one_request() -> None:
    """pacing.slack_s: 0.1 s between the requests of a rate under one a second (a server's
    one-second window holds one token and absorbs no arrival jitter), less what the window
    absorbs as the rate nears it, never over 5 % of the spacing; none at a request a second or
    more a window (fast rates lose no throughput)."""
    assert slack_s(5.0) == pytest.approx(0.1)  # 12 s apart: 0.8 % of the spacing
    assert slack_s(20.0) == pytest.approx(0.1)  # the bench's given-ipm5-20s: 3 s apart
    assert slack_s(60.0) == pytest.approx(0.05)  # 1 s apart: the 5 % bound
    assert slack_s(70.0) == 0.0  # 0.857 s apart: the window absorbs 0.143 s
    for per_minute in (600.0, 2_400.0, 60_000.0, math.inf):
        assert slack_s(per_minute) == 0.0
    for per_minute in (1.0, 5.0, 20.0, 45.0, 60.0, 62.0, 64.0, 66.0):
        assert slack_s(per_minute) <= 0.05 * 60.0 / per_minute + 1e-12
    assert slackened(20.0) == pytest.approx(60.0 / 3.1)
    assert slackened(600.0) == 600.0


def test_the_time_slack_counts_a_headroom_under_the_limit_as_part_of_it() -> None:
    """With no flags the autopilot aims at 0.985 of a stated 20/min (3.046 s apart): the slack
    tops that up to 0.1 s over the limit's 3 s spacing, not 0.1 s more on top (3.146 s: the
    bench's shape-ipm5-20s at 0.963 instead of 0.993); a rate cut well under it keeps its own."""
    assert slackened(20.0 * 0.985, 20.0) == pytest.approx(60.0 / 3.1)
    assert slackened(17.0, 20.0) == 17.0  # 3.53 s apart: more than 3.1 already
    assert slackened(20.0, None) == pytest.approx(60.0 / 3.1)
    assert slackened(2_400.0 * 0.985, 2_400.0) == 2_400.0 * 0.985
