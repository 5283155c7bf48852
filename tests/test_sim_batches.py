"""The simulator's Files and Batch APIs against OpenAI's schemas (tests/data/openapi/), on a
hand-moved clock: the state machine, request counts, the output and error line format, cancel,
the batch faults, and the per-custom_id counters."""

from __future__ import annotations

import http.client
import json
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from tests.simhelpers import KEY, FakeClock

SPEC = json.loads(
    (Path(__file__).parent / "data/openapi/openai-batch-files-edits-openapi.json").read_text()
)


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    return jsonschema.Draft202012Validator(schema)


BATCH = _validator("Batch")
FILE = _validator("OpenAIFile")
BATCH_LIST = _validator("ListBatchesResponse")
FILE_LIST = _validator("ListFilesResponse")


def _call(sim: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    try:
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, data


def _lines(n: int, *, start: int = 0, prompt: str = "a lighthouse at dusk") -> bytes:
    return b"".join(
        json.dumps(
            {
                "custom_id": f"job-{i}",
                "method": "POST",
                "url": "/v1/images/generations",
                "body": {
                    "model": "gpt-image-1",
                    "prompt": f"{prompt} {i}",
                    "size": "1024x1024",
                    "quality": "low",
                },
            }
        ).encode()
        + b"\n"
        for i in range(start, start + n)
    )


def _client(sim: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url, api_key=KEY, max_retries=0)


def _submit(sim: Any, data: bytes, **meta: str) -> dict[str, Any]:
    client = _client(sim)
    f = client.files.create(file=(f"in-{uuid.uuid4().hex}.jsonl", data), purpose="batch")
    FILE.validate(f.model_dump(exclude_none=True))
    status, batch = _call(
        sim,
        "POST",
        "/v1/batches",
        {
            "input_file_id": f.id,
            "endpoint": "/v1/images/generations",
            "completion_window": "24h",
            "metadata": meta or None,
        },
    )
    assert status == 200, batch
    BATCH.validate(batch)
    return batch


def _content(sim: Any, file_id: str) -> list[dict[str, Any]]:
    text = _client(sim).files.content(file_id).text
    return [json.loads(line) for line in text.splitlines()]


def test_state_machine_counts_and_output_lines_follow_the_clock(make_sim) -> None:
    clock = FakeClock()
    sim = make_sim(clock=clock, batch_seconds=100.0)
    batch = _submit(sim, _lines(10), batchgen_run="r1", part="1")
    assert batch["status"] == "validating"
    assert batch["request_counts"] == {"total": 10, "completed": 0, "failed": 0}
    seen = []
    for t in (4, 10, 50, 94.9, 96, 101):
        clock.now = 1000.0 + t
        _, b = _call(sim, "GET", f"/v1/batches/{batch['id']}")
        BATCH.validate(b)
        seen.append((b["status"], b["request_counts"]["completed"]))
    assert seen == [
        ("validating", 0),
        ("in_progress", 0),
        ("in_progress", 5),
        ("in_progress", 9),
        ("finalizing", 10),
        ("completed", 10),
    ]
    assert b["output_file_id"] and "error_file_id" not in b and b["completed_at"]
    lines = _content(sim, b["output_file_id"])
    assert [line["custom_id"] for line in lines] == [f"job-{i}" for i in range(10)]
    first = lines[0]
    assert set(first) == {"id", "custom_id", "response", "error"} and first["error"] is None
    assert first["response"]["status_code"] == 200 and first["response"]["request_id"]
    body = first["response"]["body"]
    _validator("ImagesResponse").validate(body)
    assert body["usage"]["output_tokens"] == 272 and body["data"][0]["b64_json"]
    stats = _call(sim, "GET", "/_sim/stats?timeline=0")[1]["batch"]
    assert stats["submitted"] == {f"job-{i}": 1 for i in range(10)}
    assert stats["billed"] == {f"job-{i}": 1 for i in range(10)}


def test_line_faults_go_to_the_error_file_in_the_real_format(make_sim) -> None:
    clock = FakeClock()
    sim = make_sim(clock=clock, batch_seconds=10.0)
    data = (
        _lines(3)
        + _lines(1, start=3, prompt="[sim:content_policy] refused")
        + _lines(1, start=4, prompt="[sim:server] broken")
    )
    batch = _submit(sim, data)
    clock.advance(11)
    b = _call(sim, "GET", f"/v1/batches/{batch['id']}")[1]
    assert b["status"] == "completed"
    assert b["request_counts"] == {"total": 5, "completed": 3, "failed": 2}
    errors = {line["custom_id"]: line for line in _content(sim, b["error_file_id"])}
    assert errors["job-3"]["response"]["status_code"] == 400
    assert errors["job-3"]["response"]["body"]["error"]["code"] == "moderation_blocked"
    assert errors["job-4"]["response"]["status_code"] == 500
    assert len(_content(sim, b["output_file_id"])) == 3


def test_cancel_keeps_what_finished_and_lists_the_rest_as_cancelled(make_sim) -> None:
    clock = FakeClock()
    sim = make_sim(clock=clock, batch_seconds=100.0)
    batch = _submit(sim, _lines(10))
    clock.now = 1000.0 + 50  # half-way: 5 done
    status, b = _call(sim, "POST", f"/v1/batches/{batch['id']}/cancel")
    assert status == 200 and b["status"] == "cancelling"
    BATCH.validate(b)
    clock.advance(2)
    b = _call(sim, "GET", f"/v1/batches/{batch['id']}")[1]
    assert b["status"] == "cancelled" and b["cancelled_at"]
    assert len(_content(sim, b["output_file_id"])) == 5
    rest = _content(sim, b["error_file_id"])
    assert {line["error"]["code"] for line in rest} == {"batch_cancelled"}
    assert all(line["response"] is None for line in rest) and len(rest) == 5
    again = _call(sim, "POST", f"/v1/batches/{batch['id']}/cancel")
    assert again[0] == 409  # already ended: nothing to cancel
    stats = _call(sim, "GET", "/_sim/stats?timeline=0")[1]["batch"]
    assert len(stats["billed"]) == 5 and stats["cancels"] == 1


def test_batch_faults_fail_validation_and_expire(make_sim) -> None:
    clock = FakeClock()
    sim = make_sim(clock=clock, batch_seconds=10.0, batch_faults="fail=1,expire=2")
    failed = _submit(sim, _lines(4))
    expired = _submit(sim, _lines(6, start=10))
    duplicate = _submit(sim, _lines(2) + _lines(1))  # job-0 twice: a real validation failure
    clock.advance(20)
    b1 = _call(sim, "GET", f"/v1/batches/{failed['id']}")[1]
    b2 = _call(sim, "GET", f"/v1/batches/{expired['id']}")[1]
    b3 = _call(sim, "GET", f"/v1/batches/{duplicate['id']}")[1]
    for b in (b1, b2, b3):
        BATCH.validate(b)
    assert b1["status"] == "failed" and b1["errors"]["data"] and "output_file_id" not in b1
    assert b3["status"] == "failed" and b3["errors"]["data"][0]["code"] == "duplicate_custom_id"
    assert b2["status"] == "expired"
    assert len(_content(sim, b2["output_file_id"])) == 3
    assert {line["error"]["code"] for line in _content(sim, b2["error_file_id"])} == {
        "batch_expired"
    }


def test_lists_page_newest_first_and_files_are_found_by_name(make_sim) -> None:
    sim = make_sim(batch_seconds=0.0)
    ids = [_submit(sim, _lines(1, start=i), part=str(i))["id"] for i in range(3)]
    _, page = _call(sim, "GET", "/v1/batches?limit=2")
    BATCH_LIST.validate(page)
    assert [b["id"] for b in page["data"]] == ids[::-1][:2] and page["has_more"]
    _, rest = _call(sim, "GET", f"/v1/batches?limit=2&after={page['last_id']}")
    assert [b["id"] for b in rest["data"]] == [ids[0]] and not rest["has_more"]
    assert [b["metadata"]["part"] for b in page["data"] + rest["data"]] == ["2", "1", "0"]
    _, files = _call(sim, "GET", "/v1/files?purpose=batch")
    FILE_LIST.validate(files)
    assert len(files["data"]) == 3 and all(f["filename"].endswith(".jsonl") for f in files["data"])
    official = [b.id for b in _client(sim).batches.list()]
    assert official == ids[::-1]


@pytest.mark.parametrize("path", ["/v1/batches", "/v1/files"])
def test_the_batch_routes_need_a_key(sim, path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    try:
        conn.request("GET", path)
        assert conn.getresponse().status == 401
    finally:
        conn.close()
