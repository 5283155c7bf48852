"""Gemini's Batch API behind the batch code's seam (:class:`~batchgen.batch.api.BatchBackend`).

Google's shapes (Gemini API "Batch Mode", v1beta), translated to and from the OpenAI-shaped
objects the rest of batchgen/batch/ reads, so submit, follow, collect, resume, cancel and the
deadline work unchanged:

* **create**: ``POST {base}/models/{model}:batchGenerateContent`` with ``{"batch":
  {"display_name", "input_config": {"requests": {"requests": [{"request", "metadata":
  {"key"}}]}}}}`` (inline, when the part's requests are under ``inline_max_bytes``, 20 MB) or
  ``"input_config": {"file_name": "files/…"}`` (a JSONL of ``{"key", "request"}`` lines
  uploaded through the Files API: ``POST {root}/upload/v1beta/files``, resumable start then
  upload+finalize). One batch runs one model: a part holding several models is refused.
* **follow**: ``GET {base}/batches/{id}`` answers a long-running Operation; its
  ``metadata.state`` (``BATCH_STATE_PENDING/RUNNING/SUCCEEDED/FAILED/CANCELLED/EXPIRED``) and
  ``metadata.batchStats`` become the OpenAI status and request counts.
* **results**: ``response.inlinedResponses.inlinedResponses`` (in input order, each with its
  ``metadata.key``) or ``response.responsesFile`` (``GET {root}/download/v1beta/{file}:download
  ?alt=media``, streamed), each answer turned into an OpenAI output line: images from the
  candidates' ``inlineData``, a blocked answer a 400 content-policy line, an error
  (``google.rpc.Status``) a line with its HTTP status.
* **cancel**: ``POST {base}/batches/{id}:cancel``; **list**: ``GET {base}/batches`` and
  ``GET {base}/files`` (``nextPageToken``), for the crash reconciliation.

The part's metadata (run id, part number) travels in the batch's display name (Gemini batches
have no metadata) and the uploaded file's display name is the part's unique file name.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import orjson

from batchgen.batch.lines import LineSplitter, LongLine, max_line_bytes
from batchgen.errors import AttemptError, ErrorClass
from batchgen.provider.gemini import _BLOCKED, body_request, gemini_error
from batchgen.provider.transport import KeyedSession

INLINE_MAX_BYTES = 20 * 1000 * 1000  # Google: inline requests up to 20 MB in all
INLINE_MAX_ENV = "BATCHGEN_GEMINI_INLINE_MAX_BYTES"  # a lower limit (tests, cautious users)
INLINE = "inline:"
_RETRIES = 5
_CHUNK = 1 << 20
STATES = {
    "BATCH_STATE_PENDING": "validating",
    "BATCH_STATE_RUNNING": "in_progress",
    "BATCH_STATE_SUCCEEDED": "completed",
    "BATCH_STATE_FAILED": "failed",
    "BATCH_STATE_CANCELLED": "cancelled",
    "BATCH_STATE_EXPIRED": "expired",
}
# google.rpc.Code → HTTP status (an errored line's status; collect classifies it)
_RPC_HTTP = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 7: 403, 8: 429, 9: 400, 11: 400,
             13: 500, 14: 503, 16: 401}  # fmt: skip
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


def _batch_of(op: Any) -> dict[str, Any]:
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
        "id": name, "status": status, "created_at": _unix(meta.get("createTime")),
        "request_counts": {"total": _int(stats.get("requestCount")),
                           "completed": _int(stats.get("successfulRequestCount")),
                           "failed": _int(stats.get("failedRequestCount"))},
        "metadata": metadata_of(meta.get("displayName")),
    }  # fmt: skip
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
        response.update(status_code=400, body={"error": {"code": "content_policy_violation",
                                                         "message": message}})  # fmt: skip
    else:
        response.update(status_code=200, body={"data": data})
    head["response"] = response
    return orjson.dumps(head) + b"\n"


def _key_of(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    meta = doc.get("metadata")
    key = meta.get("key") if isinstance(meta, dict) else doc.get("key")
    return key if isinstance(key, str) else None


class GeminiBatchApi(KeyedSession):
    """Gemini's Batch and Files APIs as the OpenAI-shaped :class:`BatchBackend`.

    ``input_path(part)`` is the part's local input file (OpenAI request lines, kept until its
    batch is created): the model and the inline requests are read from it at creation."""

    def __init__(
        self, base_url: str, api_key: str, *, input_path: Callable[[int], Path],
        timeout: float = 120.0, inline_max_bytes: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(base_url, api_key)
        base = self.base_url.rstrip("/")
        root, _, version = base.rpartition("/")
        self._root, self._version = root, version or "v1beta"
        self._headers = {"x-goog-api-key": api_key, "User-Agent": "batchgen"}
        self._timeout = timeout
        self._input_path = input_path
        self.inline_max_bytes = inline_limit() if inline_max_bytes is None else inline_max_bytes

    # -- requests --------------------------------------------------------------------------
    async def _call(self, method: str, url: str, *, retry: bool = True, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, url, **kwargs)
            except AttemptError as exc:
                if not retry or not exc.error_class.retryable or attempt >= _RETRIES:
                    raise
                await anyio.sleep(exc.retry_after_s or random.uniform(0, 0.25 * 2**attempt))

    async def _once(self, method: str, url: str, **kwargs: Any) -> Any:
        doc, _ = await self._raw(method, url, **kwargs)
        return doc

    async def _raw(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[Any, Any]:
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        where = url.removeprefix(self._root)
        with self._transport_errors(f"{method} {where}: no answer in time", f"{method} {where}: "):
            async with self._client().request(
                method, url, headers={**self._headers, **(headers or {})}, timeout=timeout,
                **kwargs,
            ) as resp:  # fmt: skip
                body = await resp.read()
                if resp.status != 200:
                    raise gemini_error(self, resp.status, body, resp.headers, resp.content_type)
                answer_headers = resp.headers
        try:
            return (orjson.loads(body) if body.strip() else {}), answer_headers
        except ValueError as exc:
            msg = f"{method} {where}: the answer is not JSON ({len(body)} bytes)"
            raise AttemptError(ErrorClass.INVALID_RESPONSE, msg, http_status=200) from exc

    def _url(self, path: str) -> str:
        return f"{self._root}/{self._version}/{path}"

    # -- files -----------------------------------------------------------------------------
    def _lines(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        with open(path, "rb") as f:
            for raw in f:
                if raw.strip():
                    line = orjson.loads(raw)
                    yield str(line["custom_id"]), dict(line["body"])

    def _model(self, path: Path) -> str:
        models = {str(body.get("model")) for _, body in self._lines(path)}
        if len(models) != 1:
            msg = (f"a Gemini batch runs one model, and this part holds {len(models)} "
                   f"({', '.join(sorted(models))}): split the job file by model")  # fmt: skip
            raise AttemptError(ErrorClass.BAD_REQUEST, msg)
        return models.pop()

    def _gemini_jsonl(self, path: Path) -> bytes:
        return b"".join(
            orjson.dumps({"key": key, "request": body_request(body)}) + b"\n"
            for key, body in self._lines(path)
        )

    async def upload(self, path: Path, filename: str) -> dict[str, Any]:
        """Small parts stay local (sent inline at creation); others go to the Files API."""
        self._model(path)
        data = self._gemini_jsonl(path)
        if len(data) <= self.inline_max_bytes:
            return {"id": f"{INLINE}{filename}"}
        return await self._upload(data, filename)

    async def _upload(self, data: bytes, filename: str) -> dict[str, Any]:
        url = f"{self._root}/upload/{self._version}/files"
        start = {"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                 "X-Goog-Upload-Header-Content-Length": str(len(data)),
                 "X-Goog-Upload-Header-Content-Type": "application/jsonl"}  # fmt: skip
        attempt = 0
        while True:
            attempt += 1
            try:
                _, headers = await self._raw(
                    "POST", url, headers=start, json={"file": {"display_name": filename}}
                )
                target = headers.get("x-goog-upload-url")
                if not target:
                    msg = "POST upload/files: the answer has no x-goog-upload-url"
                    raise AttemptError(ErrorClass.INVALID_RESPONSE, msg, http_status=200)
                finish = {"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"}
                doc, _ = await self._raw("POST", target, headers=finish, data=data)
                file = doc.get("file") if isinstance(doc, dict) else None
                if not isinstance(file, dict) or not isinstance(file.get("name"), str):
                    msg = "POST upload/files: the answer names no file"
                    raise AttemptError(ErrorClass.INVALID_RESPONSE, msg, http_status=200)
                return {"id": file["name"], "filename": filename}
            except AttemptError as exc:
                if not exc.error_class.retryable or attempt >= _RETRIES:
                    raise
                await anyio.sleep(exc.retry_after_s or random.uniform(0, 0.25 * 2**attempt))

    async def list_files(self) -> AsyncIterator[dict[str, Any]]:
        token: str | None = None
        while True:
            params = {"pageSize": "100", **({"pageToken": token} if token else {})}
            page = await self._call("GET", self._url("files"), params=params)
            for item in page.get("files") or []:
                if isinstance(item, dict):
                    yield {"id": item.get("name"), "filename": item.get("displayName"),
                           "purpose": "batch"}  # fmt: skip
            token = page.get("nextPageToken")
            if not token:
                return

    async def stream_lines(
        self, file_id: str, *, max_line: int | None = None
    ) -> AsyncIterator[bytearray | LongLine]:
        if file_id.startswith(INLINE):
            op = await self._call("GET", self._url(file_id[len(INLINE) :]))
            result = op.get("response") if isinstance(op, dict) else None
            inlined = result.get("inlinedResponses") if isinstance(result, dict) else None
            items = inlined.get("inlinedResponses") if isinstance(inlined, dict) else None
            for item in items if isinstance(items, list) else []:
                key = _key_of(item)
                if key is not None:
                    yield bytearray(output_line(key, item.get("response"), item.get("error")))
            return
        cap = max_line_bytes() if max_line is None else max_line
        url = f"{self._root}/download/{self._version}/{file_id}:download"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=self._timeout)
        with self._transport_errors(f"GET {file_id}: stalled", f"GET {file_id}: "):
            async with self._client().get(
                url, params={"alt": "media"}, headers=self._headers, timeout=timeout
            ) as resp:
                if resp.status != 200:
                    body = await resp.read()
                    raise gemini_error(self, resp.status, body, resp.headers, resp.content_type)
                splitter = LineSplitter(cap)
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    for line in splitter.feed(chunk):
                        yield _converted(line)
                last = splitter.end()
                if last is not None:
                    yield _converted(last)

    # -- batches ---------------------------------------------------------------------------
    async def create_batch(
        self, input_file_id: str, endpoint: str, metadata: dict[str, str]
    ) -> dict[str, Any]:
        path = self._input_path(int(metadata["part"]))
        model = self._model(path)
        config: dict[str, Any]
        if input_file_id.startswith(INLINE):
            requests = [{"request": body_request(body), "metadata": {"key": key}}
                        for key, body in self._lines(path)]  # fmt: skip
            config = {"requests": {"requests": requests}}
        else:
            config = {"file_name": input_file_id}
        body = {"batch": {"display_name": display_name(metadata), "input_config": config}}
        url = self._url(f"models/{quote(model, safe='.-_')}:batchGenerateContent")
        # not retried blindly: a lost answer may hide a created batch (the caller reconciles)
        return _batch_of(await self._call("POST", url, retry=False, json=body))

    async def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        return _batch_of(await self._call("GET", self._url(batch_id)))

    async def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        await self._call("POST", self._url(f"{batch_id}:cancel"))
        return await self.retrieve_batch(batch_id)

    async def list_batches(self, newer_than: float = 0.0) -> AsyncIterator[dict[str, Any]]:
        token: str | None = None
        while True:
            params = {"pageSize": "100", **({"pageToken": token} if token else {})}
            page = await self._call("GET", self._url("batches"), params=params)
            for op in page.get("operations") or []:
                item = _batch_of(op)
                if (item.get("created_at") or 0) < newer_than:
                    return
                yield item
            token = page.get("nextPageToken")
            if not token:
                return


def _converted(line: bytearray | LongLine) -> bytearray | LongLine:
    """A responses-file line ``{"key", "response"}`` or ``{"key", "error"}`` → OpenAI's."""
    if isinstance(line, LongLine):
        return line
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line  # collect says it skipped a line that is not JSON
    key = _key_of(doc)
    if key is None:
        return line
    return bytearray(output_line(key, doc.get("response"), doc.get("error") or doc.get("status")))
