"""Shared pieces of the simulator tests: HTTP helpers over 127.0.0.1, the OpenAPI
response validators and a hand-moved clock for the server limiter."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import jsonschema

KEY = "sk-test-0123456789abcdef"
# a copy of the shared reference, kept in the repository (tests/data/openapi/README.md)
SPEC = json.loads(
    (Path(__file__).parent / "data" / "openapi" / "openai-images-openapi.json").read_text()
)


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
