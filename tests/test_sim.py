"""The simulator over real HTTP on 127.0.0.1: protocol, schemas, the openai client, faults,
directives, the smooth server limit, urls, usage and counters."""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import io
import json
import math
import socket
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
from PIL import Image

from batchgen.errors import ErrorClass, classify_http, parse_reset_duration, parse_retry_after
from batchgen.sim import (
    FAULT_CLASSES,
    SimConfig,
    SimConfigError,
    add_sim_arguments,
    parse_faults,
    run_sim,
    sim_config_from_args,
)
from batchgen.sim.limits import format_duration

KEY = "sk-test-0123456789abcdef"
SPEC = json.loads(Path("/work/shared/reference/openai-images-openapi.json").read_text())


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    return jsonschema.Draft202012Validator(schema)


IMAGES_RESPONSE = _validator("ImagesResponse")
ERROR_RESPONSE = _validator("ErrorResponse")


class FakeClock:
    """The server limiter's time, moved by hand so the smooth-limit tests are exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def post(
    sim: Any,
    body: dict[str, Any] | bytes,
    *,
    key: str | None = KEY,
    path: str = "/v1/images/generations",
    timeout: float = 10,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    try:
        conn.request("POST", path, body if isinstance(body, bytes) else json.dumps(body), headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def get(sim: Any, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def gpt(prompt: str = "a red fox in snow", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-image-1", "prompt": prompt, **extra}


def error_of(status: int, data: bytes) -> dict[str, Any]:
    body = json.loads(data)
    ERROR_RESPONSE.validate(body)
    return body["error"]


# -- protocol and schemas --------------------------------------------------------------------


@pytest.mark.parametrize("sim", [{"tiny": False}], indirect=True)
@pytest.mark.parametrize(
    ("size", "quality", "fmt", "dims", "per_image"),
    [
        ("1024x1536", "low", "png", (1024, 1536), 408),
        ("1536x1024", "high", "jpeg", (1536, 1024), 6208),
        ("auto", "auto", "webp", (1024, 1024), 1056),
    ],
)
def test_gpt_image_answer_is_valid_real_image_with_usage(sim, size, quality, fmt, dims, per_image):
    prompt = "a lighthouse at dusk, oil painting, " * 3
    status, headers, data = post(
        sim, gpt(prompt, n=2, size=size, quality=quality, output_format=fmt)
    )
    assert status == 200
    body = json.loads(data)
    IMAGES_RESPONSE.validate(body)
    assert len(body["data"]) == 2
    for item in body["data"]:
        img = Image.open(io.BytesIO(base64.b64decode(item["b64_json"], validate=True)))
        assert img.format.lower() == fmt
        assert img.size == dims
        assert len(img.convert("L").getcolors(256)) > 20  # structure, not a blank canvas
    text_tokens = math.ceil(len(prompt) / 4)
    assert body["usage"] == {
        "input_tokens": text_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0},
        "output_tokens": 2 * per_image,
        "output_tokens_details": {"image_tokens": 2 * per_image, "text_tokens": 0},
        "total_tokens": text_tokens + 2 * per_image,
    }
    assert body["output_format"] == fmt
    assert body["quality"] == ("medium" if quality == "auto" else quality)
    assert body["size"] == f"{dims[0]}x{dims[1]}"
    assert headers["x-request-id"].startswith("req_")
    assert int(headers["openai-processing-ms"]) >= 0


@pytest.mark.parametrize("sim", [{"tiny": False}], indirect=True)
def test_gpt_image_2_free_size_scales_tokens_by_area_and_transparency_has_alpha(sim):
    body = gpt(model="gpt-image-2", size="512x256", quality="high", background="transparent")
    status, _, data = post(sim, body)
    answer = json.loads(data)
    IMAGES_RESPONSE.validate(answer)  # the schema's size enum lacks free sizes: left out
    assert status == 200 and "size" not in answer
    assert answer["usage"]["output_tokens"] == round(4160 * 512 * 256 / 1024**2)
    assert answer["background"] == "transparent"
    img = Image.open(io.BytesIO(base64.b64decode(answer["data"][0]["b64_json"])))
    assert img.size == (512, 256) and img.mode == "RGBA"
    assert {a for _, a in img.getchannel("A").getcolors(256)} == {0, 255}


def test_tiny_and_image_kb_knobs(make_sim):
    tiny = make_sim(tiny=True)
    data = json.loads(post(tiny, gpt(size="1536x1024"))[2])["data"][0]["b64_json"]
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (64, 64)
    sized = make_sim(tiny=False, image_kb=48)
    data = json.loads(post(sized, gpt())[2])["data"][0]["b64_json"]
    raw = base64.b64decode(data)
    assert abs(len(raw) - 48 * 1024) < 0.06 * 48 * 1024
    Image.open(io.BytesIO(raw)).verify()


def test_prompts_pick_different_pictures_deterministically(sim):
    a1 = json.loads(post(sim, gpt("prompt A", n=3))[2])["data"]
    a2 = json.loads(post(sim, gpt("prompt A", n=3))[2])["data"]
    assert [d["b64_json"] for d in a1] == [d["b64_json"] for d in a2]
    assert len({d["b64_json"] for d in a1}) == 3  # the n images of one answer differ


def test_dalle3_url_is_downloadable_png_with_revised_prompt(sim):
    status, _, data = post(sim, {"model": "dall-e-3", "prompt": "a quiet harbour", "quality": "hd"})
    body = json.loads(data)
    IMAGES_RESPONSE.validate(body)
    assert status == 200 and "usage" not in body
    item = body["data"][0]
    assert "a quiet harbour" in item["revised_prompt"]
    assert item["url"].startswith(f"http://127.0.0.1:{sim.port}/v1/images/files/")
    status, headers, png = get(sim, item["url"].split(str(sim.port), 1)[1])
    assert status == 200 and headers["content-type"] == "image/png"
    Image.open(io.BytesIO(png)).verify()
    assert sim.stats.downloads == 1
    assert get(sim, "/v1/images/files/img-nope.png")[0] == 404


def test_dalle2_b64_and_url_expiry(make_sim):
    clock = FakeClock()
    sim = make_sim(clock=clock, url_ttl_s=60)
    status, _, data = post(
        sim, {"prompt": "default model is dall-e-2", "response_format": "b64_json"}
    )
    item = json.loads(data)["data"][0]
    assert status == 200 and set(item) == {"b64_json"}
    url = json.loads(post(sim, {"model": "dall-e-2", "prompt": "p", "size": "256x256"})[2])["data"][
        0
    ]["url"]
    path = url.split(str(sim.port), 1)[1]
    clock.advance(59)
    assert get(sim, path)[0] == 200
    clock.advance(2)
    assert get(sim, path)[0] == 404


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"model": "gpt-image-1"}, 400, "missing_required_parameter", "prompt"),
        (gpt(""), 400, "invalid_value", "prompt"),
        (gpt(prompt=42), 400, "invalid_value", "prompt"),
        ({"model": "no-such-model", "prompt": "x"}, 404, "model_not_found", None),
        (gpt(n=11), 400, "invalid_value", "n"),
        (gpt(n=0), 400, "invalid_value", "n"),
        ({"model": "dall-e-3", "prompt": "x", "n": 2}, 400, "invalid_value", "n"),
        (gpt(size="512x512"), 400, "invalid_value", "size"),
        (gpt(model="gpt-image-2", size="1000x1000"), 400, "invalid_value", "size"),
        (gpt(model="gpt-image-2", size="4096x2160"), 400, "invalid_value", "size"),
        ({"model": "dall-e-3", "prompt": "x", "size": "256x256"}, 400, "invalid_value", "size"),
        ({"model": "dall-e-2", "prompt": "x", "size": "1792x1024"}, 400, "invalid_value", "size"),
        (gpt(quality="hd"), 400, "invalid_value", "quality"),
        ({"model": "dall-e-3", "prompt": "x", "quality": "high"}, 400, "invalid_value", "quality"),
        (gpt(output_format="gif"), 400, "invalid_value", "output_format"),
        (gpt(background="transparent", output_format="jpeg"), 400, "invalid_value", "background"),
        (gpt("x" * 32001), 400, "string_above_max_length", "prompt"),
        ({"model": "dall-e-3", "prompt": "x" * 4001}, 400, "string_above_max_length", "prompt"),
        ({"model": "dall-e-2", "prompt": "x" * 1001}, 400, "string_above_max_length", "prompt"),
        (gpt(colour="blue"), 400, "unknown_parameter", "colour"),
        (b"{not json", 400, None, None),
    ],
)
def test_invalid_requests_answer_like_openai(sim, body, status, code, param):
    got, headers, data = post(sim, body)
    err = error_of(got, data)
    assert (got, err["code"], err["param"]) == (status, code, param)
    assert err["type"] == "invalid_request_error"
    assert "x-request-id" in headers and "x-ratelimit-limit-requests" in headers
    assert classify_http(got, err["code"]) is ErrorClass.BAD_REQUEST
    outcome = "model_not_found" if status == 404 else "invalid_request"
    assert sim.stats[outcome] == 1 and sim.stats["ok"] == 0


def test_prompt_limits_are_inclusive_and_extra_models_are_served(make_sim):
    sim = make_sim(extra_models=("flux-kontext-pro",))
    assert post(sim, {"model": "dall-e-2", "prompt": "x" * 1000})[0] == 200
    status, _, data = post(sim, {"model": "flux-kontext-pro", "prompt": "x", "aspect_ratio": "1:1"})
    body = json.loads(data)
    IMAGES_RESPONSE.validate(body)
    assert status == 200 and "usage" not in body and "b64_json" in body["data"][0]


# -- auth --------------------------------------------------------------------------------------


def test_missing_key_is_401_and_wrong_key_is_never_echoed(make_sim):
    open_sim = make_sim()
    status, _, data = post(open_sim, gpt(), key=None)
    assert status == 401 and error_of(status, data)["code"] == "invalid_api_key"
    assert post(open_sim, gpt(), key="anything-goes")[0] == 200

    locked = make_sim(api_key=KEY)
    wrong = "sk-wrong-key-9876543210"
    status, _, data = post(locked, gpt(), key=wrong)
    assert status == 401 and error_of(status, data)["code"] == "invalid_api_key"
    assert wrong not in data.decode() and "9876" not in data.decode()
    assert post(locked, gpt(), key=KEY)[0] == 200
    assert locked.stats["unauthorized"] == 1
    assert KEY not in repr(locked.config) and KEY not in get(locked, "/_sim/config")[2].decode()


# -- the official client -----------------------------------------------------------------------


def test_openai_sync_client_unchanged(sim):
    client = openai.OpenAI(base_url=sim.base_url, api_key=KEY, max_retries=0)
    try:
        result = client.images.generate(model="gpt-image-1", prompt="a teapot", n=2, quality="low")
        assert len(result.data) == 2 and result.usage.output_tokens == 2 * 272
        Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json))).verify()
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.generate(model="gpt-image-1", prompt="[sim:content_policy] a teapot")
        assert refused.value.code == "moderation_blocked"
        with pytest.raises(openai.RateLimitError):
            client.images.generate(model="gpt-image-1", prompt="[sim:rate_limit*1] a teapot")
        with pytest.raises(openai.NotFoundError):
            client.images.generate(model="gpt-image-9", prompt="a teapot")
    finally:
        client.close()


def test_openai_async_client_unchanged():
    async def scenario() -> None:
        async with run_sim(SimConfig(tiny=True)) as sim:
            client = openai.AsyncOpenAI(base_url=sim.base_url, api_key=KEY, max_retries=0)
            try:
                results = await asyncio.gather(
                    *(
                        client.images.generate(model="gpt-image-1-mini", prompt=f"cat {i}")
                        for i in range(5)
                    )
                )
                assert all(r.data[0].b64_json for r in results)
                url = await client.images.generate(model="dall-e-2", prompt="dog", size="256x256")
                assert url.data[0].url.endswith(".png")
                with pytest.raises(openai.InternalServerError):
                    await client.images.generate(model="gpt-image-1", prompt="[sim:server] x")
            finally:
                await client.close()
            assert (
                sim.stats["ok"] == 6 and sim.stats["server"] == 1 and sim.stats.images_served == 6
            )

    asyncio.run(scenario())


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
    if fault == "bad_base64":
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


# -- pieces ------------------------------------------------------------------------------------


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
        "--port 0 --rpm 60 --latency 0.3 --faults server=0.1,content_policy=0.05 --tiny "
        "--image-kb 48 --seed 1 --fail-after quota=5 --limit-schedule 0:60,30:120".split()
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


def test_unprefixed_path_and_latency_knob(make_sim):
    sim = make_sim(latency_mean=0.05)
    status, headers, data = post(sim, gpt("no /v1"), path="/images/generations")
    assert status == 200 and json.loads(data)["data"]
    assert int(headers["openai-processing-ms"]) >= 50
    assert sim.stats.accepted[0][1] == 1 and sim.stats.snapshot()["accepted_count"] == 1
