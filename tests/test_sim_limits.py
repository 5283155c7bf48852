"""The simulator's smooth server limit (rpm, ipm, schedule), live config and reset, and the
reset-duration headers."""

from __future__ import annotations

import json

import pytest

from batchgen.errors import parse_reset_duration
from batchgen.sim.limits import format_duration
from tests.simhelpers import FakeClock, error_of, get, gpt, post

# -- the smooth server limit -------------------------------------------------------------------


def test_rpm_limit_is_smooth_not_a_minute_burst(make_sim):
    clock = FakeClock()
    sim = make_sim(rpm=600, clock=clock)  # 10 per second: the bucket holds 10, not 600
    statuses = [post(sim, gpt(f"b{i}"))[0] for i in range(12)]
    assert statuses == [200] * 10 + [429, 429]
    status, headers, data = post(sim, gpt("late"))
    assert error_of(status, data)["code"] == "rate_limit_exceeded"
    assert json.loads(data)["error"]["type"] == "requests"
    assert headers["retry-after-ms"] == "100" and headers["retry-after"] == "1"
    assert headers["x-ratelimit-limit-requests"] == "600"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert parse_reset_duration(headers["x-ratelimit-reset-requests"]) == pytest.approx(1.0)
    clock.advance(0.1)
    assert post(sim, gpt("after 100ms"))[0] == 200
    assert post(sim, gpt("again"))[0] == 429
    # a steady client at the limit is never refused: one request every 0.1 s for 20 s
    for i in range(200):
        clock.advance(0.1)
        assert post(sim, gpt(f"steady {i}"))[0] == 200
    assert sim.stats["server_rate_limited"] == 4
    assert sim.stats.max_in_window(10.0) <= 600 / 6 + 10  # rate over any 10 s, plus one bucket


def test_ipm_limit_counts_images_and_schedule_raises_rpm(make_sim):
    clock = FakeClock()
    sim = make_sim(ipm=120, clock=clock)  # 2 images/s, bucket of 2
    status, headers, _ = post(sim, gpt("two", n=2))
    assert status == 200 and headers["x-ratelimit-limit-images"] == "120"
    status, headers, _ = post(sim, gpt("one more"))
    assert status == 429 and headers["retry-after-ms"] == "500"
    assert sim.stats.max_in_window(1.0, images=True) == 2

    scheduled = make_sim(rpm=60, limit_schedule=((10.0, 120.0),), clock=clock)
    assert [post(scheduled, gpt(f"s{i}"))[0] for i in range(2)] == [200, 429]
    clock.advance(10.0)  # now 120 rpm: the bucket grows to 2 and refills at 2/s
    assert [post(scheduled, gpt(f"t{i}"))[0] for i in range(2)] == [200, 429]
    clock.advance(1.0)
    assert [post(scheduled, gpt(f"u{i}"))[0] for i in range(3)] == [200, 200, 429]
    assert get(scheduled, "/_sim/config")[0] == 200


def test_live_config_update_and_reset(sim):
    assert post(sim, gpt("[sim:server*1] a"))[0] == 500
    status, _, data = post(
        sim, json.dumps({"rpm": 60, "faults": "server=1"}).encode(), path="/_sim/config"
    )
    assert status == 200 and json.loads(data)["faults"] == {"server": 1.0}
    assert post(sim, gpt("b"))[0] == 500
    assert post(sim, gpt("c"))[0] == 429  # the 60 rpm bucket holds one request
    status, _, data = post(sim, b'{"rpmm": 5}', path="/_sim/config")
    assert status == 400 and "rpmm" in json.loads(data)["error"]["message"]
    sim.update(rpm=None, faults={})
    stats = json.loads(get(sim, "/_sim/stats")[2])
    assert stats["outcomes"] == {"server": 2, "server_rate_limited": 1}
    assert stats["received"] == 3 and len(stats["accepted"]) == 2
    assert post(sim, b"", path="/_sim/reset")[0] == 200
    assert sim.stats.received == 0
    assert post(sim, gpt("[sim:server*1] a"))[0] == 500  # attempts per prompt were cleared too


def test_reset_durations_round_trip():
    for seconds, text in [
        (0.02, "20ms"),
        (1.0, "1s"),
        (1.5, "1.5s"),
        (360.0, "6m0s"),
        (3723.0, "1h2m3s"),
    ]:
        assert format_duration(seconds) == text
        assert parse_reset_duration(text) == pytest.approx(seconds)
