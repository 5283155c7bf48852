"""Gemini's Batch API shapes ↔ the OpenAI-shaped objects batchgen/batch/ reads (the client is
batchgen/batch/gemini.py): an Operation → a Batch object (status, request counts, the output
"file"), an answer (GenerateContentResponse or error Status) → an output line, the part's
metadata in the batch's display name, the inline size limit.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import orjson

from batchgen.batch.lines import LongLine
from batchgen.provider.gemini import _BLOCKED

INLINE_MAX_BYTES = 20 * 1000 * 1000  # Google: inline requests up to 20 MB in all
INLINE_MAX_ENV = "BATCHGEN_GEMINI_INLINE_MAX_BYTES"  # a lower limit (tests, cautious users)
INLINE = "inline:"
STATES = {
    "BATCH_STATE_PENDING": "validating",
    "BATCH_STATE_RUNNING": "in_progress",
    "BATCH_STATE_SUCCEEDED": "completed",
    "BATCH_STATE_FAILED": "failed",
    "BATCH_STATE_CANCELLED": "cancelled",
    "BATCH_STATE_EXPIRED": "expired",
}
# google.rpc.Code → HTTP status (an errored line's status; collect classifies it)
_RPC_HTTP = {
    1: 499,
    2: 500,
    3: 400,
    4: 504,
    5: 404,
    7: 403,
    8: 429,
    9: 400,
    11: 400,
    13: 500,
    14: 503,
    16: 401,
}
_NAME_SEP = " part "


def inline_limit() -> int:
    """Bytes of requests sent inline: ``BATCHGEN_GEMINI_INLINE_MAX_BYTES`` (at most Google's
    20 MB), else 20 MB."""
    raw = os.environ.get(INLINE_MAX_ENV, "").strip()
    try:
        value = int(raw) if raw else INLINE_MAX_BYTES
    except ValueError:
        return INLINE_MAX_BYTES
    return min(value, INLINE_MAX_BYTES) if value >= 0 else INLINE_MAX_BYTES


def display_name(metadata: dict[str, str]) -> str:
    return f"batchgen {metadata.get('batchgen_run', '')}{_NAME_SEP}{metadata.get('part', '')}"


def metadata_of(name: Any) -> dict[str, str] | None:
    """The part's metadata back from a batch's display name (None: not one of batchgen's)."""
    if not isinstance(name, str) or not name.startswith("batchgen ") or _NAME_SEP not in name:
        return None
    run, part = name[len("batchgen ") :].rsplit(_NAME_SEP, 1)
    return {"batchgen_run": run, "part": part}


def _int(value: Any) -> int:
    """An int64 field (JSON strings in Google's APIs)."""
    if isinstance(value, bool):
        return 0
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def _unix(stamp: Any) -> int:
    if not isinstance(stamp, str):
        return 0
    try:
        return int(dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def batch_of(op: Any) -> dict[str, Any]:
    """A batch Operation (or the bare GenerateContentBatch) → an OpenAI-shaped Batch object."""
    if not isinstance(op, dict):
        return {}
    meta = op.get("metadata") if isinstance(op.get("metadata"), dict) else op
    assert isinstance(meta, dict)
    name = op.get("name") or meta.get("name")
    status = STATES.get(str(meta.get("state")))
    found = meta.get("batchStats")
    stats: dict[str, Any] = found if isinstance(found, dict) else {}
    out: dict[str, Any] = {
        "id": name,
        "status": status,
        "created_at": _unix(meta.get("createTime")),
        "request_counts": {
            "total": _int(stats.get("requestCount")),
            "completed": _int(stats.get("successfulRequestCount")),
            "failed": _int(stats.get("failedRequestCount")),
        },
        "metadata": metadata_of(meta.get("displayName")),
    }
    result = op.get("response") if isinstance(op.get("response"), dict) else meta.get("output")
    if isinstance(result, dict):
        if isinstance(result.get("responsesFile"), str):
            out["output_file_id"] = result["responsesFile"]
        elif isinstance(result.get("inlinedResponses"), dict):
            out["output_file_id"] = f"{INLINE}{name}"
    err = op.get("error")
    if isinstance(err, dict):
        out["errors"] = [{"code": str(err.get("code")), "message": str(err.get("message"))}]
    return out


def output_line(key: str, answer: Any, error: Any) -> bytes:
    """One Gemini answer (a GenerateContentResponse, or an error Status) as the OpenAI output
    line collect reads."""
    head: dict[str, Any] = {"custom_id": key}
    if not isinstance(answer, dict):
        err = error if isinstance(error, dict) else {}
        status = _RPC_HTTP.get(_int(err.get("code")), 500)
        if _int(err.get("code")) == 1:  # CANCELLED: the request never ran
            not_run = {"code": "batch_cancelled", "message": str(err.get("message") or "")}
            head.update(response=None, error=not_run)
            return orjson.dumps(head) + b"\n"
        body = {"error": {"code": err.get("status"), "message": str(err.get("message") or "")}}
        head["response"] = {"status_code": status, "body": body}
        return orjson.dumps(head) + b"\n"
    data: list[dict[str, Any]] = []
    reasons: list[str] = []
    feedback = answer.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        reasons.append(str(feedback["blockReason"]))
    candidates = answer.get("candidates")
    for cand in candidates if isinstance(candidates, list) else []:
        if not isinstance(cand, dict):
            continue
        if cand.get("finishReason") in _BLOCKED:
            reasons.append(str(cand["finishReason"]))
        content = cand.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            inline = part.get("inlineData") if isinstance(part, dict) else None
            if isinstance(inline, dict):
                data.append({"b64_json": inline.get("data")})
    request_id = answer.get("responseId")
    response: dict[str, Any] = {"request_id": request_id if isinstance(request_id, str) else None}
    if not data and reasons:
        message = f"the prompt or its image was blocked by Gemini's safety filters ({reasons[0]})"
        response.update(
            status_code=400,
            body={"error": {"code": "content_policy_violation", "message": message}},
        )
    else:
        response.update(status_code=200, body={"data": data})
    head["response"] = response
    return orjson.dumps(head) + b"\n"


def key_of(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    meta = doc.get("metadata")
    key = meta.get("key") if isinstance(meta, dict) else doc.get("key")
    return key if isinstance(key, str) else None


def converted(line: bytearray | LongLine) -> bytearray | LongLine:
    """A responses-file line ``{"key", "response"}`` or ``{"key", "error"}`` → OpenAI's."""
    if isinstance(line, LongLine):
        return line
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line  # collect says it skipped a line that is not JSON
    key = key_of(doc)
    if key is None:
        return line
    return bytearray(output_line(key, doc.get("response"), doc.get("error") or doc.get("status")))
