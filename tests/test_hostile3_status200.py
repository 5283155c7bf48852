"""Round three: an error answered with HTTP 200 — ``{"error": {...}}`` and no ``data`` — as
OpenRouter documents for errors once generation has begun, and as some gateways answer every
error. It was "the 200 answer has no images": invalid_response, final, whatever the error said.
So a quota or auth error did not stop the run (every job failed for good, one by one), a rate
limit was not paced, a server error was not retried. The error's own code decides, as for any
status, and the log keeps the 200.

Real HTTP against the simulator: ``[sim:status_200]`` with a fault directive."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from batchgen.errors import AttemptError, ErrorClass
from batchgen.provider.openai import OpenAIImages
from tests.test_providers import KEY, job


def _attempt(sim: Any, prompt: str) -> Any:
    async def main() -> Any:
        provider = OpenAIImages(sim.base_url, KEY)
        try:
            return await provider.generate(job(prompt, "gpt-image-1"), timeout=10)
        except AttemptError as exc:
            return exc
        finally:
            await provider.aclose()

    return anyio.run(main)


@pytest.mark.parametrize(
    ("fault", "klass", "code"),
    [
        ("auth", ErrorClass.AUTH, "invalid_api_key"),
        ("quota", ErrorClass.QUOTA, "insufficient_quota"),
        ("rate_limit", ErrorClass.RATE_LIMIT, "rate_limit_exceeded"),
        ("content_policy", ErrorClass.CONTENT_POLICY, "moderation_blocked"),
        ("server", ErrorClass.SERVER, None),
    ],
)
def test_an_error_body_with_http_200_is_classified_by_its_code(
    make_sim: Any, fault: str, klass: ErrorClass, code: str | None
) -> None:
    sim = make_sim(api_key=KEY, latency_mean=0, latency_jitter=0)
    result = _attempt(sim, f"[sim:status_200][sim:{fault}] a red fox")
    assert isinstance(result, AttemptError), result
    assert result.error_class is klass, (result.error_class, result.message)
    assert not result.final  # nothing was delivered to refuse
    assert result.http_status == 200
    if code is not None:
        assert result.code == code
    assert "HTTP 200" in result.message and KEY not in result.message
    assert sim.stats.outcomes[fault] == 1
