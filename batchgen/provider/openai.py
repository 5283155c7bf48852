"""OpenAI-compatible images provider: ``POST {base_url}/images/generations`` over aiohttp,
and ``POST {base_url}/images/edits`` for jobs with input images (batchgen.provider.edits).

Speaks to OpenAI, Azure-style proxies, aggregators, LiteLLM and local servers that use the same
protocol. Every failure leaves as an AttemptError whose class comes from batchgen.errors; every
message is redacted of the key before it leaves.
"""

from __future__ import annotations

import binascii
import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pybase64

from batchgen.errors import (
    AttemptError,
    ErrorClass,
    classify_http,
    error_code,
    parse_retry_after,
    provider_text,
    redact,
)
from batchgen.images import MAX_IMAGE_PIXELS, image_pixels, sniff_ext
from batchgen.jobs.model import Job, request_bytes
from batchgen.provider.base import GenerateResult, ImageData
from batchgen.provider.edits import edit_request
from batchgen.provider.usage import parse_usage

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
# a whole answer (n base64 images), counted after gzip/deflate/br decoding: a body of
# hundreds of MB, or a small gzip bomb, is cut off here instead of filling the memory
MAX_ANSWER_BYTES = 128 * 1024 * 1024
# of an error answer only the start is read: the message is in its first few KB
_ERROR_READ_BYTES = 64 * 1024
_RATELIMIT_PREFIX = "x-ratelimit-"


class OpenAIImages:
    """One shared aiohttp session for the whole run (connection reuse matters at volume)."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connections: int = 100,
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._url = f"{self.base_url}/images/generations"
        self._key = api_key
        self._max_download = max_download_bytes
        self._max_answer = max_answer_bytes
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "User-Agent": "batchgen",
            **(extra_headers or {}),
        }
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url_for(self, job: Job) -> str:
        """Where this job's request goes (Azure: per deployment)."""
        return self._url

    def _redact(self, text: str) -> str:
        return redact(text, (self._key,))

    def _text(self, value: Any, limit: int = 2000) -> str | None:
        """Any field of an answer, as stored and printed: text, redacted, cut."""
        return provider_text(value, (self._key,), limit)

    async def generate(self, job: Job, *, timeout: float) -> GenerateResult:
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        url, headers = self._url_for(job), self._headers
        data: Any
        try:
            data = request_bytes(job.body)
        except TypeError as exc:  # validation refuses such a body; kept for library callers
            msg = f"the request body cannot be sent as JSON ({exc}): fix job line {job.line}"
            raise AttemptError(ErrorClass.BAD_REQUEST, msg) from exc
        if job.inputs:
            data, content_type = await edit_request(job)
            # the edits endpoint beside the generations one (Azure: of the same deployment)
            url, headers = url.replace("/images/generations", "/images/edits"), dict(headers)
            if content_type is None:
                del headers["Content-Type"]  # multipart: aiohttp writes it with the boundary
        try:
            async with self._client().post(
                url, data=data, headers=headers, timeout=client_timeout
            ) as resp:
                headers = resp.headers
                status = resp.status
                content_type = resp.content_type
                if status != 200:
                    body = await _read_capped(resp, _ERROR_READ_BYTES, truncate=True)
                else:
                    body = await _read_capped(resp, self._max_answer)
                    if body is None:
                        msg = (
                            f"the 200 answer is larger than {self._max_answer} bytes "
                            "(after decompression): refused, not read to the end"
                        )
                        raise AttemptError(
                            ErrorClass.INVALID_RESPONSE,
                            msg,
                            http_status=200,
                            request_id=self._text(headers.get("x-request-id"), 200),
                        )
            if status != 200:
                raise self._http_error(status, body or b"", headers, content_type)
            return await self._parse_success(job, body, headers, client_timeout)
        except AttemptError:
            raise
        except TimeoutError as exc:
            msg = f"no complete answer within --timeout {timeout:g}s"
            raise AttemptError(ErrorClass.TIMEOUT, msg) from exc
        except aiohttp.ClientError as exc:
            msg = self._redact(f"{type(exc).__name__}: {exc}")
            raise AttemptError(ErrorClass.NETWORK, msg) from exc
        except OSError as exc:
            msg = self._redact(f"{type(exc).__name__}: {exc}")
            raise AttemptError(ErrorClass.NETWORK, msg) from exc

    def _http_error(
        self, status: int, body: bytes, headers: Any, content_type: str
    ) -> AttemptError:
        # error.code / error.type may be strings (OpenAI), numbers (OpenRouter), objects,
        # lists or null: only a string or a number is a code; anything else is not one
        code: str | None = None
        is_html = "html" in content_type or body.lstrip()[:1] == b"<"
        message: str | None = ""
        if not is_html:
            try:
                err = orjson.loads(body).get("error") or {}
                if isinstance(err, dict):
                    code = error_code(err.get("code"), (self._key,))
                    code = code or error_code(err.get("type"), (self._key,))
                    message = self._text(err.get("message") or "")
                else:
                    message = self._text(err)
            except (ValueError, AttributeError):
                message = self._text(body[:200].decode("utf-8", "replace"))
        else:
            message = "an HTML error page instead of a JSON error (a proxy or gateway answered)"
        klass = classify_http(status, code, is_html=is_html)
        return AttemptError(
            klass,
            message or f"HTTP {status}",
            http_status=status,
            code=code,
            retry_after_s=parse_retry_after(headers),
            request_id=self._text(headers.get("x-request-id"), 200),
            ratelimit=_ratelimit_headers(headers),
        )

    async def _parse_success(
        self, job: Job, body: bytes | bytearray, headers: Any, timeout: aiohttp.ClientTimeout
    ) -> GenerateResult:
        request_id = self._text(headers.get("x-request-id"), 200)
        ratelimit = _ratelimit_headers(headers)
        usage = None
        notes: list[str] = []

        def invalid(msg: str) -> AttemptError:
            return AttemptError(
                ErrorClass.INVALID_RESPONSE,
                self._redact("; ".join([msg, *notes])),
                http_status=200,
                request_id=request_id,
                ratelimit=ratelimit,
                usage=usage,
            )

        # orjson and pybase64 (SIMD): a 48 KB answer parses in ~12 µs instead of ~25 µs and
        # decodes in ~2 µs instead of ~74 µs (the stdlib's); at thousands of images per second
        # on one core that is the difference between the client and the server setting the pace
        payload = _loads(body)
        if isinstance(payload, Exception):
            msg = f"the 200 answer is not valid JSON ({payload}; {len(body)} bytes)"
            raise invalid(msg) from payload
        if isinstance(payload, dict) and "usage" in payload:
            usage, note = parse_usage(payload["usage"])
            if note:
                notes.append(self._redact(note))
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or not data:
            raise invalid("the 200 answer has no images (`data` is missing or empty)")
        if len(data) > job.n:
            # only what was asked for is decoded and saved (and priced by the table)
            notes.append(
                f"the answer held {len(data)} images for n={job.n}: kept the first {job.n}"
            )
            data = data[: job.n]
        images = []
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                raise invalid(f"data[{i}] is not an object")
            if item.get("b64_json"):
                try:
                    raw = pybase64.b64decode(item["b64_json"], validate=True)
                except (binascii.Error, ValueError, TypeError) as exc:
                    raise invalid(f"data[{i}].b64_json is not valid base64 ({exc})") from exc
            elif item.get("url"):
                raw = await self._download(str(item["url"]), timeout, invalid)
            else:
                raise invalid(f"data[{i}] has neither b64_json nor url")
            ext = sniff_ext(raw)
            if ext is None:
                raise invalid(f"data[{i}] is {len(raw)} bytes that are not a PNG/JPEG/WebP/GIF")
            pixels = image_pixels(raw, ext)
            if pixels is not None and pixels > MAX_IMAGE_PIXELS:
                msg = (
                    f"data[{i}] is a decompression bomb: its header claims {pixels:,} pixels "
                    f"(Pillow's limit is {MAX_IMAGE_PIXELS:,})"
                )
                raise invalid(msg)
            images.append(ImageData(raw, ext, self._text(item.get("revised_prompt"), 32_000)))
        return GenerateResult(
            images=images,
            usage=usage,
            request_id=request_id,
            ratelimit=ratelimit,
            note="; ".join(notes) or None,
        )

    async def _download(self, url: str, timeout: aiohttp.ClientTimeout, invalid: Any) -> bytes:
        if urlsplit(url).scheme not in ("http", "https"):
            raise invalid(f"refusing to download an image URL that is not http(s): {url[:80]}")
        try:
            # no Authorization header: image URLs are pre-signed, and the key must not leak
            async with self._client().get(url, timeout=timeout) as resp:
                if resp.status != 200:
                    raise invalid(f"image download answered HTTP {resp.status}")
                if (resp.content_length or 0) > self._max_download:
                    raise invalid(f"image download larger than {self._max_download} bytes")
                chunks, size = [], 0
                async for chunk in resp.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > self._max_download:
                        raise invalid(f"image download larger than {self._max_download} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except aiohttp.ClientError as exc:
            raise invalid(f"image download failed: {type(exc).__name__}: {exc}") from exc


def _ratelimit_headers(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith(_RATELIMIT_PREFIX)}


def _loads(body: bytes | bytearray) -> Any:
    """orjson first (fast); the standard library for what orjson refuses but JSON allows (a
    number like 1e999, an integer beyond 64 bits). The error, returned, when neither parses."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            return exc


async def _read_capped(
    resp: aiohttp.ClientResponse, limit: int, *, truncate: bool = False
) -> bytearray | None:
    """The body, decompressed, up to ``limit`` bytes. Past it: None, or with ``truncate``
    the first ``limit`` bytes. The rest is never read (the connection is dropped)."""
    if not truncate and (resp.content_length or 0) > limit:
        return None
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > limit:
            if truncate:
                del buf[limit:]
                break
            return None
    return buf
