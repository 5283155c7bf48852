"""The simulator's POST /v1/images/edits: multipart and JSON, checked like the real endpoint,
answers valid against the official schema (tests/data/openapi/), usage with input image
tokens, and the usual faults."""

from __future__ import annotations

import base64
import http.client
import io
import json
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
from PIL import Image

from batchgen.jobs.inputs import input_image_tokens
from tests.simhelpers import ERROR_RESPONSE, KEY, post

EDITS_SPEC = json.loads(
    (
        Path(__file__).parent / "data" / "openapi" / "openai-batch-files-edits-openapi.json"
    ).read_text()
)


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": EDITS_SPEC["components"]}
    return jsonschema.Draft202012Validator(schema)


EDIT_RESPONSE = _validator("ImagesResponse")
JSON_EDIT_REQUEST = _validator("EditImageBodyJsonParam")


def png(width: int = 64, height: int = 64, color: str = "red", fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    mode = "RGBA" if fmt == "PNG" else "RGB"
    Image.new(mode, (width, height), color).save(buf, format=fmt)
    return buf.getvalue()


def multipart(
    sim: Any, fields: dict[str, str], files: list[tuple[str, bytes]]
) -> tuple[int, dict[str, Any]]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    for i, (name, data) in enumerate(files):
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="f{i}.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    try:
        conn.request(
            "POST",
            "/v1/images/edits",
            body,
            {
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Authorization": f"Bearer {KEY}",
            },
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


BASE = {"model": "gpt-image-1", "prompt": "make it blue", "quality": "low", "size": "1024x1024"}


def test_multipart_edit_answers_to_the_schema_with_input_image_tokens(sim: Any) -> None:
    images = [("image[]", png(64, 64)), ("image[]", png(128, 64, "blue", "JPEG"))]
    mask = ("mask", png(64, 64, "white"))
    status, doc = multipart(sim, BASE, [*images, mask])
    assert status == 200, doc
    EDIT_RESPONSE.validate(doc)
    expected = input_image_tokens(64, 64) + input_image_tokens(128, 64)
    assert doc["usage"]["input_tokens_details"]["image_tokens"] == expected
    assert (
        doc["usage"]["input_tokens"]
        == expected + doc["usage"]["input_tokens_details"]["text_tokens"]
    )
    Image.open(io.BytesIO(base64.b64decode(doc["data"][0]["b64_json"]))).verify()


def test_json_edit_with_data_url_url_and_file_id(sim: Any) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(png()).decode()
    body = {
        **BASE,
        "input_fidelity": "high",
        "images": [
            {"image_url": data_url},
            {"image_url": "https://example.com/a.png"},
            {"file_id": "file-abc123"},
        ],
    }
    JSON_EDIT_REQUEST.validate(body)  # the request itself is what the schema describes
    status, _, raw = post(sim, body, path="/v1/images/edits")
    doc = json.loads(raw)
    assert status == 200, doc
    EDIT_RESPONSE.validate(doc)
    expected = input_image_tokens(64, 64, "high") + 2 * input_image_tokens(1024, 1024, "high")
    assert doc["usage"]["input_tokens_details"]["image_tokens"] == expected


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="GIF")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fields", "files", "param"),
    [
        ({}, [("image[]", _gif())], "image"),
        ({}, [("image[]", png(64, 64)), ("mask", png(32, 32))], "mask"),
        ({}, [("image[]", png(64, 64)), ("mask", png(64, 64, fmt="JPEG"))], "mask"),
        ({}, [("image[]", png())] * 17, "image"),
        ({}, [], "image"),
        ({"model": "dall-e-3"}, [("image[]", png())], "model"),
        ({"model": "dall-e-2"}, [("image[]", png(64, 32))], "image"),
        ({"input_fidelity": "max"}, [("image[]", png())], "input_fidelity"),
    ],
    ids=[
        "gif",
        "mask-size",
        "mask-jpeg",
        "17-images",
        "no-image",
        "dall-e-3",
        "dalle2-not-square",
        "fidelity",
    ],
)
def test_invalid_edits_are_refused_like_the_real_api(
    sim: Any, fields: dict[str, str], files: list[tuple[str, bytes]], param: str
) -> None:
    status, doc = multipart(sim, {**BASE, **fields}, files)
    assert status == 400, doc
    ERROR_RESPONSE.validate(doc)
    assert doc["error"]["param"] == param
    assert sim.stats["ok"] == 0


def test_edits_get_the_usual_faults(sim: Any) -> None:
    status, doc = multipart(sim, {**BASE, "prompt": "recolour [sim:server]"}, [("image[]", png())])
    assert status == 500
    ERROR_RESPONSE.validate(doc)
    status, doc = multipart(sim, BASE, [("image[]", png())])
    assert status == 200


def test_the_openai_client_edits_against_the_simulator(sim: Any) -> None:
    client = openai.OpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0)
    result = client.images.edit(
        model="gpt-image-1",
        prompt="add a hat",
        image=[("a.png", png()), ("b.png", png())],
        quality="low",
        size="1024x1024",
    )
    assert result.data and result.data[0].b64_json
    assert result.usage is not None
    assert result.usage.input_tokens_details.image_tokens == 2 * input_image_tokens(64, 64)


def test_edits_count_against_the_server_limits(make_sim: Any) -> None:
    from tests.simhelpers import FakeClock

    clock = FakeClock()
    sim = make_sim(rpm=60, clock=clock)  # one a second, the bucket holds one
    statuses = [multipart(sim, BASE, [("image[]", png())])[0] for _ in range(2)]
    assert statuses == [200, 429]
    clock.advance(1.0)
    assert multipart(sim, BASE, [("image[]", png())])[0] == 200
