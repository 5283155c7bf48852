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

import random
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import orjson

from batchgen.batch.geminishapes import (
    INLINE,
    batch_of,
    converted,
    display_name,
    inline_limit,
    key_of,
    output_line,
)
from batchgen.batch.lines import LineSplitter, LongLine, max_line_bytes
from batchgen.errors import AttemptError, ErrorClass
from batchgen.provider.gemini import body_request, gemini_error
from batchgen.provider.transport import KeyedSession

_RETRIES = 5
_CHUNK = 1 << 20


class GeminiBatchApi(KeyedSession):
    """Gemini's Batch and Files APIs as the OpenAI-shaped :class:`BatchBackend`.

    ``input_path(part)`` is the part's local input file (OpenAI request lines, kept until its
    batch is created): the model and the inline requests are read from it at creation."""

    key_header = "x-goog-api-key"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        input_path: Callable[[int], Path],
        timeout: float = 120.0,
        inline_max_bytes: int | None = None,
    ) -> None:
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
                method,
                url,
                headers={**self._headers, **(headers or {})},
                timeout=timeout,
                **kwargs,
            ) as resp:
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
            msg = (
                f"a Gemini batch runs one model, and this part holds {len(models)} "
                f"({', '.join(sorted(models))}): split the job file by model"
            )
            raise AttemptError(ErrorClass.BAD_REQUEST, msg)
        return models.pop()

    def _gemini_lines(self, path: Path) -> Iterator[bytes]:
        for key, body in self._lines(path):
            yield orjson.dumps({"key": key, "request": body_request(body)}) + b"\n"

    async def upload(self, path: Path, filename: str) -> dict[str, Any]:
        """Small parts stay local (sent inline at creation); others go to the Files API as a
        JSONL of ``{"key", "request"}`` lines, written beside the input and streamed from disk
        (never held whole in memory)."""
        self._model(path)
        size = sum(len(line) for line in self._gemini_lines(path))
        if size <= self.inline_max_bytes:
            return {"id": f"{INLINE}{filename}"}
        converted_path = path.with_name(path.stem + ".gemini.jsonl")
        with open(converted_path, "wb") as f:  # noqa: ASYNC230 - a local file, once
            for line in self._gemini_lines(path):
                f.write(line)
        try:
            return await self._upload(converted_path, size, filename)
        finally:
            converted_path.unlink(missing_ok=True)

    async def _upload(self, path: Path, size: int, filename: str) -> dict[str, Any]:
        url = f"{self._root}/upload/{self._version}/files"
        start = {
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(size),
            "X-Goog-Upload-Header-Content-Type": "application/jsonl",
        }
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
                with open(path, "rb") as data:  # noqa: ASYNC230 - aiohttp streams it
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
                    yield {
                        "id": item.get("name"),
                        "filename": item.get("displayName"),
                        "purpose": "batch",
                    }
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
                key = key_of(item)
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
                        yield converted(line)
                last = splitter.end()
                if last is not None:
                    yield converted(last)

    # -- batches ---------------------------------------------------------------------------
    async def create_batch(
        self, input_file_id: str, endpoint: str, metadata: dict[str, str]
    ) -> dict[str, Any]:
        path = self._input_path(int(metadata["part"]))
        model = self._model(path)
        config: dict[str, Any]
        if input_file_id.startswith(INLINE):
            requests = [
                {"request": body_request(body), "metadata": {"key": key}}
                for key, body in self._lines(path)
            ]
            config = {"requests": {"requests": requests}}
        else:
            config = {"file_name": input_file_id}
        body = {"batch": {"display_name": display_name(metadata), "input_config": config}}
        url = self._url(f"models/{quote(model, safe='.-_')}:batchGenerateContent")
        # not retried blindly: a lost answer may hide a created batch (the caller reconciles)
        return batch_of(await self._call("POST", url, retry=False, json=body))

    async def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        return batch_of(await self._call("GET", self._url(batch_id)))

    async def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        await self._call("POST", self._url(f"{batch_id}:cancel"))
        return await self.retrieve_batch(batch_id)

    async def list_batches(self, newer_than: float = 0.0) -> AsyncIterator[dict[str, Any]]:
        token: str | None = None
        while True:
            params = {"pageSize": "100", **({"pageToken": token} if token else {})}
            page = await self._call("GET", self._url("batches"), params=params)
            for op in page.get("operations") or []:
                item = batch_of(op)
                if (item.get("created_at") or 0) < newer_than:
                    return
                yield item
            token = page.get("nextPageToken")
            if not token:
                return
