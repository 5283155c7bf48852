"""Issue 15: every protocol (Azure, Gemini, Black Forest Labs' polling, fal's queue) through
real HTTP against the simulator — success, content refusal, rate limit, quota, auth, server
error, an expired result URL — each lands in its class of the one taxonomy, and the key never
reaches a message."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from batchgen.errors import AttemptError, ErrorClass
from batchgen.jobs.model import Job
from batchgen.provider.azure import AzureImages
from batchgen.provider.bfl import BflImages
from batchgen.provider.fal import FalImages
from batchgen.provider.gemini import GeminiImages, aspect_ratio
from batchgen.provider.http import same_site

KEY = "sk-sim-providers-SECRET-0001"
POLL = 0.001  # seconds between polls: tests never wait on real poll intervals


def job(prompt: str, model: str, **body: Any) -> Job:
    return Job.make("j1", 1, {"prompt": prompt, "model": model, "n": 1, **body})


def make(protocol: str, sim: Any, key: str = KEY) -> Any:
    root = sim.root_url
    if protocol == "azure":
        return AzureImages(f"{root}/openai", key, deployments={"gpt-image-1": "my-dep"})
    if protocol == "gemini":
        return GeminiImages(f"{root}/v1beta", key)
    if protocol == "bfl":
        return BflImages(f"{root}/bfl/v1", key, poll_interval_s=POLL, max_poll_interval_s=POLL)
    return FalImages(f"{root}/fal", key, poll_interval_s=POLL, max_poll_interval_s=POLL)


MODELS = {
    "azure": "gpt-image-1",
    "gemini": "gemini-2.5-flash-image",
    "bfl": "flux-pro-1.1",
    "fal": "fal-ai/flux/dev",
}


def generate(protocol: str, sim: Any, prompt: str, *, key: str = KEY, timeout: float = 10.0) -> Any:
    async def main() -> Any:
        provider = make(protocol, sim, key)
        try:
            return await provider.generate(
                job(prompt, MODELS[protocol], size="1024x1024", quality="low"), timeout=timeout
            )
        except AttemptError as exc:
            return exc
        finally:
            await provider.aclose()

    return anyio.run(main)


PROTOCOLS = ("azure", "gemini", "bfl", "fal")


@pytest.fixture
def keyed_sim(make_sim: Any) -> Any:
    return make_sim(api_key=KEY)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_success_saves_a_real_image(keyed_sim: Any, protocol: str) -> None:
    result = generate(protocol, keyed_sim, "a red fox")
    assert not isinstance(result, AttemptError), result
    assert len(result.images) == 1 and result.images[0].ext == "png"
    assert result.images[0].data[:8] == b"\x89PNG\r\n\x1a\n"
    assert keyed_sim.stats["ok"] == 1


CASES = [
    ("[sim:content_policy] a fox", ErrorClass.CONTENT_POLICY),
    ("[sim:rate_limit] a fox", ErrorClass.RATE_LIMIT),
    ("[sim:quota] a fox", ErrorClass.QUOTA),
    ("[sim:auth] a fox", ErrorClass.AUTH),
    ("[sim:server] a fox", ErrorClass.SERVER),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("prompt", "klass"), CASES, ids=[c[1].value for c in CASES])
def test_each_fault_lands_in_its_class(
    keyed_sim: Any, protocol: str, prompt: str, klass: ErrorClass
) -> None:
    result = generate(protocol, keyed_sim, prompt)
    assert isinstance(result, AttemptError), result
    assert result.error_class is klass, (protocol, str(result))
    assert KEY not in str(result) and KEY.lower() not in str(result).lower()
    if klass is ErrorClass.RATE_LIMIT and protocol != "gemini":
        assert result.retry_after_s is not None and result.retry_after_s > 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_wrong_key_is_auth_and_never_echoed(keyed_sim: Any, protocol: str) -> None:
    result = generate(protocol, keyed_sim, "a fox", key="sk-wrong-key-XYZ12345")
    assert isinstance(result, AttemptError) and result.error_class is ErrorClass.AUTH, result
    assert "sk-wrong-key-XYZ12345" not in str(result)


@pytest.mark.parametrize("protocol", ("bfl", "fal"))
def test_an_expired_result_url_is_an_invalid_response_retried(
    keyed_sim: Any, protocol: str
) -> None:
    result = generate(protocol, keyed_sim, "[sim:expired_url] a fox")
    assert isinstance(result, AttemptError), result
    assert result.error_class is ErrorClass.INVALID_RESPONSE
    assert result.code == "result_url_expired" and result.error_class.retryable


@pytest.mark.parametrize("protocol", ("bfl", "fal"))
def test_polling_waits_for_the_task_then_downloads(make_sim: Any, protocol: str) -> None:
    sim = make_sim(api_key=KEY, latency_mean=0.05)
    result = generate(protocol, sim, "a slow fox")
    assert not isinstance(result, AttemptError), result
    assert sim.stats.downloads == 1


@pytest.mark.parametrize("protocol", ("bfl", "fal"))
def test_the_timeout_bounds_submit_poll_and_download(make_sim: Any, protocol: str) -> None:
    sim = make_sim(api_key=KEY, latency_mean=30.0)
    result = generate(protocol, sim, "a fox that takes forever", timeout=0.2)
    assert isinstance(result, AttemptError) and result.error_class is ErrorClass.TIMEOUT


def test_gemini_bad_image_data_is_invalid_response(keyed_sim: Any) -> None:
    result = generate("gemini", keyed_sim, "[sim:bad_base64] a fox")
    assert isinstance(result, AttemptError) and result.error_class is ErrorClass.INVALID_RESPONSE


def test_azure_sends_api_key_never_bearer(make_sim: Any) -> None:
    """The sim's Azure route refuses a request without `api-key`; a bearer-only client fails."""
    from batchgen.provider.openai import OpenAIImages

    sim = make_sim(api_key=KEY)

    class BearerOnAzurePath(OpenAIImages):
        def _url_for(self, job: Job) -> str:
            return f"{sim.root_url}/openai/deployments/x/images/generations?api-version=1"

    async def main() -> Any:
        provider = BearerOnAzurePath(sim.base_url, KEY)
        try:
            return await provider.generate(job("fox", "gpt-image-1"), timeout=5)
        except AttemptError as exc:
            return exc
        finally:
            await provider.aclose()

    result = anyio.run(main)
    assert isinstance(result, AttemptError) and result.error_class is ErrorClass.AUTH
    azure = AzureImages("https://r.openai.azure.com/openai", KEY, deployments={"m": "dep 1"})
    assert "Authorization" not in azure._headers and azure._headers["api-key"] == KEY
    url = azure._url_for(job("fox", "m"))
    assert url.startswith("https://r.openai.azure.com/openai/deployments/dep%201/images/")
    assert "api-version=" in url
    assert azure._url_for(job("fox", "gpt-image-1")).split("/")[5] == "gpt-image-1"


def test_gemini_maps_sizes_to_its_aspect_ratios() -> None:
    assert aspect_ratio({"size": "1024x1024"}) == "1:1"
    assert aspect_ratio({"size": "1536x1024"}) == "3:2"
    assert aspect_ratio({"size": "1920x1080"}) == "16:9"
    assert aspect_ratio({"size": "1024x1536", "aspect_ratio": "9:16"}) == "9:16"
    assert aspect_ratio({}) is None


def test_the_key_goes_only_to_the_providers_own_hosts() -> None:
    assert same_site("https://api.us1.bfl.ai/v1/get_result?id=1", "https://api.bfl.ai/v1")
    assert same_site("http://127.0.0.1:8000/x", "http://127.0.0.1:8000/bfl/v1")
    assert not same_site("http://127.0.0.1:9000/x", "http://127.0.0.1:8000/bfl/v1")
    assert not same_site("https://delivery-eu1.bfl.ai.evil.com/x", "https://api.bfl.ai/v1")
    assert not same_site("https://storage.googleapis.com/x", "https://queue.fal.run")


def test_gemini_error_shapes_map_to_the_taxonomy() -> None:
    g = GeminiImages("https://x.invalid/v1beta", KEY)

    def klass(status: int, grpc: str, message: str = "m", details: Any = None) -> ErrorClass:
        import json

        body = {
            "error": {
                "code": status,
                "status": grpc,
                "message": message,
                **({"details": details} if details else {}),
            }
        }
        return g._error(status, json.dumps(body).encode(), {}, "application/json").error_class

    assert klass(429, "RESOURCE_EXHAUSTED") is ErrorClass.RATE_LIMIT
    assert (
        klass(429, "RESOURCE_EXHAUSTED", "check your plan and billing details") is ErrorClass.QUOTA
    )
    per_day = [{"violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}]}]
    assert klass(429, "RESOURCE_EXHAUSTED", details=per_day) is ErrorClass.QUOTA
    assert klass(400, "INVALID_ARGUMENT") is ErrorClass.BAD_REQUEST
    assert klass(403, "PERMISSION_DENIED") is ErrorClass.AUTH
    assert klass(500, "INTERNAL") is ErrorClass.SERVER
    assert klass(503, "UNAVAILABLE") is ErrorClass.SERVER
    assert klass(504, "DEADLINE_EXCEEDED") is ErrorClass.TIMEOUT
    assert klass(400, "INVALID_ARGUMENT", "API key not valid.") is ErrorClass.AUTH


def test_a_job_waiting_for_its_endpoint_is_not_journaled_as_sent(make_sim: Any) -> None:
    """The Router adds a job to the pool's in-flight set (the sent journal) when its request
    leaves the endpoint's limiter, not while it waits there: a crash then does not call a
    waiting job "possibly billed twice"."""
    from batchgen.limits import RateLimiter
    from batchgen.provider.openai import OpenAIImages
    from batchgen.provider.router import Endpoint, Router

    sim = make_sim(latency_mean=0.2)
    finished: list[str] = []
    added_after: dict[str, int] = {}

    class Journal(set[str]):
        def add(self, job_id: str) -> None:
            added_after[job_id] = len(finished)
            super().add(job_id)

    async def main() -> None:
        limiter = RateLimiter(None, None, concurrency=1, adapt=False)
        provider = OpenAIImages(sim.base_url, KEY)
        endpoint = Endpoint("e", "openai", provider, limiter, frozenset({"gpt-image-1"}))
        router = Router([endpoint], inflight=Journal())
        assert router.adds_inflight

        async def one(jid: str) -> None:
            j = Job.make(jid, 1, {"prompt": jid, "model": "gpt-image-1", "n": 1})
            result = await router.generate(j, timeout=5)
            assert result.endpoint == "e"
            finished.append(jid)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(one, "first")
                # polled (the journal has no event): no timing assumption
                while "first" not in router.inflight:  # noqa: ASYNC110
                    await anyio.sleep(0.001)
                tg.start_soon(one, "second")
        finally:
            await provider.aclose()

    anyio.run(main)
    assert added_after == {"first": 0, "second": 1}
