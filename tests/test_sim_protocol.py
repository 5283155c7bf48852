"""The simulator over real HTTP on 127.0.0.1: protocol, schemas, urls, usage, auth and the
official openai client."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math

import openai
import pytest
from PIL import Image

from batchgen.errors import ErrorClass, classify_http
from batchgen.sim import SimConfig, run_sim
from tests.simhelpers import IMAGES_RESPONSE, KEY, FakeClock, error_of, get, gpt, post

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


# -- paths and knobs ---------------------------------------------------------------------------


def test_unprefixed_path_and_latency_knob(make_sim):
    sim = make_sim(latency_mean=0.05)
    status, headers, data = post(sim, gpt("no /v1"), path="/images/generations")
    assert status == 200 and json.loads(data)["data"]
    assert int(headers["openai-processing-ms"]) >= 50
    assert sim.stats.accepted[0][1] == 1 and sim.stats.snapshot()["accepted_count"] == 1
