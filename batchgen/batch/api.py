"""The Files and Batch APIs over aiohttp (OpenAI's schemas: tests/data/openapi/).

Every failure leaves as an :class:`~batchgen.errors.AttemptError` classified by
``classify_http`` (the one taxonomy), its message redacted of the key. Transient classes
(server, network, timeout, rate_limit) are retried here a few times with full-jitter backoff;
what is left is for the caller to act on (auth and quota stop the session).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import anyio
import orjson

from batchgen.batch.lines import LineSplitter, LongLine, max_line_bytes
from batchgen.errors import AttemptError, ErrorClass, classify_http, parse_retry_after
from batchgen.provider.transport import KeyedSession

_RETRIES = 5
_CHUNK = 1 << 20


class BatchBackend(Protocol):
    """The seam of batchgen/batch/: a provider's Files and Batch APIs, in OpenAI's shapes
    (Batch objects, output lines). :class:`BatchApi` is OpenAI's; Gemini's translates
    (batchgen/batch/gemini.py)."""

    def redact(self, text: str) -> str: ...
    async def upload(self, path: Path, filename: str) -> dict[str, Any]: ...
    def list_files(self) -> AsyncIterator[dict[str, Any]]: ...
    def stream_lines(
        self, file_id: str, *, max_line: int | None = None
    ) -> AsyncIterator[bytearray | LongLine]: ...
    async def create_batch(
        self, input_file_id: str, endpoint: str, metadata: dict[str, str]
    ) -> dict[str, Any]: ...
    async def retrieve_batch(self, batch_id: str) -> dict[str, Any]: ...
    async def cancel_batch(self, batch_id: str) -> dict[str, Any]: ...
    def list_batches(self, newer_than: float = 0.0) -> AsyncIterator[dict[str, Any]]: ...
    async def aclose(self) -> None: ...


class BatchApi(KeyedSession):
    """The session, the key's redaction and transport failures: batchgen.provider.transport."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 120.0) -> None:
        super().__init__(base_url, api_key)
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": "batchgen"}
        self._timeout = timeout

    # -- requests --------------------------------------------------------------------------
    async def _call(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> Any:
        """One JSON call, retried on transient classes; returns the decoded answer."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, path, **kwargs)
            except AttemptError as exc:
                if not retry or not exc.error_class.retryable or attempt >= _RETRIES:
                    raise
                wait = exc.retry_after_s or random.uniform(0, min(30.0, 0.25 * 2**attempt))
                await anyio.sleep(wait)

    async def _once(self, method: str, path: str, **kwargs: Any) -> Any:
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        with self._transport_errors(f"{method} {path}: no answer in time", f"{method} {path}: "):
            async with self._client().request(
                method, f"{self.base_url}{path}", headers=self._headers, timeout=timeout, **kwargs
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise self._http_error(resp.status, body, resp.headers, resp.content_type)
        try:
            return orjson.loads(body)
        except ValueError as exc:
            msg = f"{method} {path}: the answer is not JSON ({len(body)} bytes)"
            raise AttemptError(ErrorClass.INVALID_RESPONSE, msg, http_status=200) from exc

    def _http_error(
        self, status: int, body: bytes, headers: Mapping[str, str], content_type: str
    ) -> AttemptError:
        is_html = "html" in content_type or body.lstrip()[:1] == b"<"
        code, message = error_fields(body) if not is_html else (None, "an HTML error page")
        return AttemptError(
            classify_http(status, code, is_html=is_html),
            self._redact(message or f"HTTP {status}"),
            http_status=status,
            code=code,
            retry_after_s=parse_retry_after(headers),
            request_id=headers.get("x-request-id"),
        )

    # -- files -----------------------------------------------------------------------------
    async def upload(self, path: Path, filename: str) -> dict[str, Any]:
        """Upload a JSONL file with purpose ``batch`` (streamed from disk, not read whole)."""

        async def once() -> dict[str, Any]:
            with open(path, "rb") as f:  # noqa: ASYNC230 - aiohttp streams it
                form = aiohttp.FormData()
                form.add_field("purpose", "batch")
                form.add_field("file", f, filename=filename, content_type="application/jsonl")
                return await self._once("POST", "/files", data=form)

        attempt = 0
        while True:
            attempt += 1
            try:
                return await once()
            except AttemptError as exc:
                if not exc.error_class.retryable or attempt >= _RETRIES:
                    raise
                await anyio.sleep(exc.retry_after_s or random.uniform(0, 0.25 * 2**attempt))

    async def list_files(self) -> AsyncIterator[dict[str, Any]]:
        """Files with purpose ``batch``, newest first."""
        after: str | None = None
        while True:
            params = {"purpose": "batch", "limit": "10000", "order": "desc"}
            if after:
                params["after"] = after
            page = await self._call("GET", "/files", params=params)
            for item in page.get("data") or []:
                yield item
            if not page.get("has_more") or not page.get("data"):
                return
            after = page["data"][-1]["id"]

    async def stream_lines(
        self, file_id: str, *, max_line: int | None = None
    ) -> AsyncIterator[bytearray | LongLine]:
        """The lines of a file's content, read in 1 MB chunks: memory holds one chunk plus
        the current line, however big the file (an image batch's output can be many GB).

        Each chunk is scanned once (linear in the file's size, however long a line is). A
        line longer than ``max_line`` bytes (default ``max_line_bytes()``) is not kept: it
        is read through and yielded as a :class:`LongLine` (its first bytes and its size)."""
        cap = max_line_bytes() if max_line is None else max_line
        timeout = aiohttp.ClientTimeout(total=None, sock_read=self._timeout)
        path = f"/files/{file_id}/content"
        with self._transport_errors(f"GET {path}: stalled", f"GET {path}: "):
            async with self._client().get(
                f"{self.base_url}{path}", headers=self._headers, timeout=timeout
            ) as resp:
                if resp.status != 200:
                    body = await resp.read()
                    raise self._http_error(resp.status, body, resp.headers, resp.content_type)
                splitter = LineSplitter(cap)
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    for line in splitter.feed(chunk):
                        yield line
                last = splitter.end()
                if last is not None:
                    yield last

    # -- batches ---------------------------------------------------------------------------
    async def create_batch(
        self, input_file_id: str, endpoint: str, metadata: dict[str, str]
    ) -> dict[str, Any]:
        body = {
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": "24h",
            "metadata": metadata,
        }
        # not retried blindly: a lost answer may hide a created batch (the caller reconciles)
        return await self._call("POST", "/batches", retry=False, json=body)

    async def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/batches/{batch_id}")

    async def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/batches/{batch_id}/cancel")

    async def list_batches(self, newer_than: float = 0.0) -> AsyncIterator[dict[str, Any]]:
        """Batches newest first, stopping at those created before ``newer_than`` (unix s)."""
        after: str | None = None
        while True:
            params = {"limit": "100"}
            if after:
                params["after"] = after
            page = await self._call("GET", "/batches", params=params)
            data = page.get("data") or []
            for item in data:
                if (item.get("created_at") or 0) < newer_than:
                    return
                yield item
            if not page.get("has_more") or not data:
                return
            after = data[-1]["id"]


def error_fields(body: bytes | dict[str, Any] | None) -> tuple[str | None, str]:
    """(code, message) of an OpenAI error body."""
    doc: Any = body
    if isinstance(body, bytes | bytearray):
        try:
            doc = orjson.loads(body)
        except ValueError:
            return None, bytes(body[:200]).decode("utf-8", "replace")
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        code = err.get("code") or err.get("type")
        return (str(code) if code is not None else None), str(err.get("message") or "")
    return None, str(err or "")
