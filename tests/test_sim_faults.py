"""The simulator's faults: each class on the wire, directives in prompts, seeded random rates,
fail-after, seeded latency, and the fault and CLI flag parsing."""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import math
import socket
from typing import Any

import pytest
from PIL import Image

from batchgen.errors import ErrorClass, classify_http, parse_retry_after
from batchgen.sim import (
    FAULT_CLASSES,
    SimConfig,
    SimConfigError,
    add_sim_arguments,
    parse_faults,
    sim_config_from_args,
)
from tests.simhelpers import error_of, gpt, post

# -- faults and directives ---------------------------------------------------------------------


def _assert_fault(sim: Any, fault: str, prompt: str) -> None:
    """What each fault class looks like on the wire."""
    if fault == "disconnect":
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            post(sim, gpt(prompt))
        return
    if fault == "timeout":
        with pytest.raises((socket.timeout, TimeoutError)):
            post(sim, gpt(prompt), timeout=0.2)
        return
    status, headers, data = post(sim, gpt(prompt))
    expected = {
        "auth": (401, "invalid_api_key", ErrorClass.AUTH),
        "quota": (429, "insufficient_quota", ErrorClass.QUOTA),
        "rate_limit": (429, "rate_limit_exceeded", ErrorClass.RATE_LIMIT),
        "content_policy": (400, "moderation_blocked", ErrorClass.CONTENT_POLICY),
        "server": (500, None, ErrorClass.SERVER),
    }
    if fault in expected:
        want_status, want_code, want_class = expected[fault]
        err = error_of(status, data)
        assert (status, err["code"]) == (want_status, want_code)
        assert classify_http(status, err["code"]) is want_class
        if fault == "rate_limit":
            assert parse_retry_after(headers) == pytest.approx(sim.config.retry_after_s)
            assert headers["retry-after"] == str(math.ceil(sim.config.retry_after_s))
        return
    if fault == "server_html":
        assert status == 503 and headers["content-type"].startswith("text/html")
        assert classify_http(status, None, is_html=True) is ErrorClass.SERVER
        return
    assert status == 200
    if fault == "truncated_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(data)
        return
    b64 = json.loads(data)["data"][0]["b64_json"]
    if fault == "expired_url":  # only a `url` answer can expire: base64 arrives whole
        Image.open(io.BytesIO(base64.b64decode(b64, validate=True))).verify()
    elif fault == "bad_base64":
        with pytest.raises(ValueError):
            base64.b64decode(b64)
    else:  # not_image
        with pytest.raises(OSError):
            Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))


@pytest.mark.parametrize("fault", FAULT_CLASSES)
def test_each_fault_class_by_directive_then_success(make_sim, fault):
    sim = make_sim(hang_s=0.6, retry_after_s=0.25)
    prompt = f"[sim:{fault}*1] a fault test"
    _assert_fault(sim, fault, prompt)
    status, _, data = post(sim, gpt(prompt), timeout=10)
    assert status == 200 and json.loads(data)["data"]
    assert sim.stats[fault] == 1 and sim.stats["ok"] == 1
    assert sim.stats.by_prompt[prompt] == 2


def test_directives_without_count_always_fault_and_chain_in_order(sim):
    for _ in range(3):
        assert post(sim, gpt("[sim:content_policy] nope"))[0] == 400
    chained = "[sim:server*2][sim:rate_limit*1] then fine"
    assert [post(sim, gpt(chained))[0] for _ in range(4)] == [500, 500, 429, 200]
    status, _, data = post(sim, gpt("[sim:bogus] x"))
    assert status == 400 and "bogus" in error_of(status, data)["message"]


@pytest.mark.parametrize(
    "sim", [{"faults": {"server": 0.3, "content_policy": 0.2}, "seed": 7}], indirect=True
)
def test_random_fault_rates_are_seeded_per_prompt_and_attempt(sim, make_sim):
    prompts = [f"job {i}" for i in range(200)]
    first = [post(sim, gpt(p))[0] for p in prompts]
    assert 40 <= first.count(500) <= 80 and 20 <= first.count(400) <= 60
    same_seed = make_sim(faults={"server": 0.3, "content_policy": 0.2}, seed=7)
    assert [post(same_seed, gpt(p))[0] for p in reversed(prompts)] == first[::-1]
    other_seed = make_sim(faults={"server": 0.3, "content_policy": 0.2}, seed=8)
    assert [post(other_seed, gpt(p))[0] for p in prompts] != first
    assert sim.stats["server"] == first.count(500) and sim.stats.received == 200


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [("quota", 429, "insufficient_quota"), ("auth", 401, "invalid_api_key")],
)
def test_fail_after_n_successes(make_sim, cls, status, code):
    sim = make_sim(fail_after={cls: 3})
    answers = [post(sim, gpt(f"p{i}")) for i in range(6)]
    assert [a[0] for a in answers] == [200, 200, 200, status, status, status]
    assert error_of(status, answers[-1][2])["code"] == code
    assert sim.stats["ok"] == 3 and sim.stats[cls] == 3


def test_latency_distribution_is_seeded_with_the_requested_mean():
    from batchgen.sim.faults import FaultPlanner

    config = SimConfig(latency_mean=2.0, latency_jitter=1.0, seed=3)
    draws = [FaultPlanner().decide(config, f"p{i}", ()).latency_s for i in range(4000)]
    again = [FaultPlanner().decide(config, f"p{i}", ()).latency_s for i in range(4000)]
    assert draws == again and min(draws) > 0
    mean = sum(draws) / len(draws)
    sd = math.sqrt(sum((d - mean) ** 2 for d in draws) / len(draws))
    assert mean == pytest.approx(2.0, rel=0.05) and sd == pytest.approx(1.0, rel=0.1)
    flat = SimConfig(latency_mean=0.5)
    assert FaultPlanner().decide(flat, "x", ()).latency_s == 0.5


def test_parse_faults_and_cli_flags():
    assert parse_faults("server=0.1, content_policy=0.05") == {
        "server": 0.1,
        "content_policy": 0.05,
    }
    with pytest.raises(SimConfigError, match="CLASS=RATE"):
        parse_faults("server")
    with pytest.raises(SimConfigError, match="unknown class 'serve'"):
        SimConfig(faults={"serve": 0.1})
    with pytest.raises(SimConfigError, match="more than 1"):
        SimConfig(faults={"server": 0.7, "auth": 0.5})
    parser = argparse.ArgumentParser()
    add_sim_arguments(parser)
    args = parser.parse_args(
        [
            "--port",
            "0",
            "--rpm",
            "60",
            "--latency",
            "0.3",
            "--faults",
            "server=0.1,content_policy=0.05",
            "--tiny",
            "--image-kb",
            "48",
            "--seed",
            "1",
            "--fail-after",
            "quota=5",
            "--limit-schedule",
            "0:60,30:120",
        ]
    )
    config = sim_config_from_args(args)
    assert (config.rpm, config.latency_mean, config.tiny, config.image_kb, config.seed) == (
        60,
        0.3,
        True,
        48,
        1,
    )
    assert config.faults == {"server": 0.1, "content_policy": 0.05}
    assert config.fail_after == {"quota": 5} and config.limit_schedule == ((0, 60), (30, 120))
    prefixed = argparse.ArgumentParser()
    add_sim_arguments(prefixed, prefix="sim-")
    assert sim_config_from_args(prefixed.parse_args(["--sim-rpm", "5"]), prefix="sim_").rpm == 5
