"""OpenAI-compatible images provider: ``POST {base_url}/images/generations`` over aiohttp,
and ``POST {base_url}/images/edits`` for jobs with input images (batchgen.provider.edits).

Speaks to OpenAI, Azure-style proxies, aggregators, LiteLLM and local servers that use the same
protocol. Every failure leaves as an AttemptError whose class comes from batchgen.errors; every
message is redacted of the key before it leaves.
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from multidict import CIMultiDict
from yarl import URL

from batchgen.errors import (
    AttemptError,
    ErrorClass,
    classify_http,
    error_code,
    parse_retry_after,
)
from batchgen.images import MAX_IMAGE_PIXELS, image_header
from batchgen.jobs.model import Job, request_bytes
from batchgen.provider.base import GenerateResult, ImageData
from batchgen.provider.edits import edit_request
from batchgen.provider.http import (
    Invalid,
    Resolve,
    b64decode,
    data_url_bytes,
    get_public,
    is_data_url,
    resolve_host,
)
from batchgen.provider.transport import (
    ERROR_READ_BYTES,
    MAX_ANSWER_BYTES,
    MAX_DOWNLOAD_BYTES,
    KeyedSession,
    loads,
    ratelimit_headers,
    read_capped,
)
from batchgen.provider.usage import parse_usage


class OpenAIImages(KeyedSession):
    """One shared aiohttp session for the whole run (batchgen.provider.transport)."""

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
        super().__init__(base_url, api_key, connections=connections)
        # parsed once (aiohttp takes a URL as it is; a str it parses on every request)
        self._url: str | URL = URL(f"{self.base_url}/images/generations")
        self._max_download = max_download_bytes
        self._max_answer = max_answer_bytes
        # a CIMultiDict, as aiohttp merges it: not converted again for every request
        self._headers = CIMultiDict(
            {
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "User-Agent": "batchgen",
                **(extra_headers or {}),
            }
        )
        self._foreign_drop = frozenset(name.lower() for name in extra_headers or {})
        self._timeout_s = math.nan
        self._timeout = aiohttp.ClientTimeout()
        # a subclass with a URL per job (Azure: per deployment) is asked for it; this one's
        # URL is the same for every job
        self._url_per_job = type(self)._url_for is not OpenAIImages._url_for

    def _url_for(self, job: Job) -> str | URL:
        """Where this job's request goes (Azure: per deployment)."""
        return self._url

    async def generate(self, job: Job, *, timeout: float) -> GenerateResult:
        client_timeout = self._timeout if timeout == self._timeout_s else self._timeout_for(timeout)
        url = self._url_for(job) if self._url_per_job else self._url
        headers = self._headers
        data: Any
        try:
            data = request_bytes(job.body)  # the job's canonical JSON: ready bytes, no json=
        except TypeError as exc:  # validation refuses such a body; kept for library callers
            msg = f"the request body cannot be sent as JSON ({exc}): fix job line {job.line}"
            raise AttemptError(ErrorClass.BAD_REQUEST, msg) from exc
        if job.inputs:
            data, content_type = await edit_request(job)
            # the edits endpoint beside the generations one (Azure: of the same deployment)
            url = str(url).replace("/images/generations", "/images/edits")
            headers = CIMultiDict(headers)
            if content_type is None:
                del headers["Content-Type"]  # multipart: aiohttp writes it with the boundary
        # (self._transport_errors written out: this runs once per request)
        try:
            async with (self._session or self._client()).post(
                url, data=data, headers=headers, timeout=client_timeout
            ) as resp:
                answer_headers = resp.headers
                status = resp.status
                if status != 200:
                    error_body = await read_capped(resp, ERROR_READ_BYTES, truncate=True)
                    raise self._http_error(
                        status, bytes(error_body or b""), answer_headers, resp.content_type
                    )
                body: bytes | bytearray | None
                length, limit = resp.content_length, self._max_answer
                if (
                    length is not None
                    and length <= limit
                    and "Content-Encoding" not in answer_headers
                ):
                    body = await resp.read()  # (read_capped's fast path, written out)
                else:
                    body = await read_capped(resp, limit)
                if body is None:  # delivered, and it would be this large again: final
                    msg = (
                        f"the 200 answer is larger than {self._max_answer} bytes "
                        "(after decompression): refused, not read to the end"
                    )
                    raise AttemptError(
                        ErrorClass.INVALID_RESPONSE,
                        msg,
                        http_status=200,
                        request_id=self._text(answer_headers.get("x-request-id"), 200),
                        final=True,
                    )
            return await self._parse_success(job, body, answer_headers, client_timeout)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            on_timeout = f"no complete answer within --timeout {timeout:g}s"
            raise self._transport_error(exc, on_timeout) from exc

    def _timeout_for(self, seconds: float) -> aiohttp.ClientTimeout:
        """One ClientTimeout per value of --timeout, not one per request."""
        if seconds != self._timeout_s:
            self._timeout_s, self._timeout = seconds, aiohttp.ClientTimeout(total=seconds)
        return self._timeout

    def _http_error(
        self, status: int, body: bytes, headers: Mapping[str, str], content_type: str
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
            ratelimit=ratelimit_headers(headers),
        )

    def _error_in_200(
        self, err: Any, body: bytes | bytearray, headers: Mapping[str, str]
    ) -> AttemptError:
        """An error answered with HTTP 200 (OpenRouter, for errors once generation has begun;
        some gateways, for all): classified as the status it stands for would be — a numeric
        ``error.code`` is that status; a rate-limit code a 429; else its code decides, or it
        is a server error (retried). The log keeps the 200; nothing was delivered."""
        code = err.get("code") if isinstance(err, dict) else None
        kind = f"{code} {err.get('type')}" if isinstance(err, dict) else str(err)
        if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
            status = code
        else:
            status = 429 if "rate_limit" in kind.lower() else 500
        as_status = self._http_error(
            status, bytes(body[:ERROR_READ_BYTES]), headers, "application/json"
        )
        return AttemptError(
            as_status.error_class,
            f"HTTP 200 with an error body: {as_status.message}",
            http_status=200,
            code=as_status.code,
            retry_after_s=as_status.retry_after_s,
            request_id=as_status.request_id,
            ratelimit=as_status.ratelimit,
        )

    async def _parse_success(
        self,
        job: Job,
        body: bytes | bytearray,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
    ) -> GenerateResult:
        request_id = self._id_text(headers.get("x-request-id"))
        ratelimit = ratelimit_headers(headers)
        usage = None
        notes: list[str] = []

        def invalid(msg: str, *, final: bool = True) -> AttemptError:
            # final (the default): the answer was delivered, billed, and would be refused the
            # same way again; not final: it did not arrive whole (see AttemptError)
            return AttemptError(
                ErrorClass.INVALID_RESPONSE,
                self._redact("; ".join([msg, *notes])),
                http_status=200,
                request_id=request_id,
                ratelimit=ratelimit,
                usage=usage,
                final=final,
            )

        # orjson and pybase64 (SIMD) parse and decode an answer several times faster than the
        # stdlib (docs/bench.md); at thousands of images per second on one core that is the
        # difference between the client and the server setting the pace
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = loads(body)  # what orjson refuses but JSON allows, or the error
        if isinstance(payload, Exception):
            # not final: a body cut on its way, or not the provider's answer at all (a proxy's
            # page): the answer did not arrive as it was made
            msg = f"the 200 answer is not valid JSON ({payload}; {len(body)} bytes)"
            raise invalid(msg, final=False) from payload
        data = None
        if isinstance(payload, dict):
            data = payload.get("data")
            if "usage" in payload:
                usage, note = parse_usage(payload["usage"])
                if note:
                    notes.append(self._redact(note))
        if not isinstance(data, list) or not data:
            if isinstance(payload, dict) and payload.get("error"):
                raise self._error_in_200(payload["error"], body, headers)
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
            b64 = item.get("b64_json")
            if b64:
                try:
                    raw = b64decode(b64)
                except (binascii.Error, ValueError, TypeError) as exc:
                    raise invalid(f"data[{i}].b64_json is not valid base64 ({exc})") from exc
            elif isinstance(item.get("url"), str) and is_data_url(item["url"]):
                # a gateway's (or fal-style) image inline: decoded, never downloaded
                raw = data_url_bytes(item["url"], f"data[{i}].url", invalid, self._max_download)
            elif item.get("url"):
                raw = await self._download(str(item["url"]), timeout, invalid)
            else:
                raise invalid(f"data[{i}] has neither b64_json nor url")
            ext, pixels = image_header(raw)
            if ext is None:
                raise invalid(f"data[{i}] is {len(raw)} bytes that are not a PNG/JPEG/WebP/GIF")
            if pixels is not None and pixels > MAX_IMAGE_PIXELS:
                msg = (
                    f"data[{i}] is a decompression bomb: its header claims {pixels:,} pixels "
                    f"(Pillow's limit is {MAX_IMAGE_PIXELS:,})"
                )
                raise invalid(msg)
            revised = item.get("revised_prompt")
            if revised is not None:
                revised = self._text(revised, 32_000)
            images.append(ImageData(raw, ext, revised))
        return GenerateResult(
            images=images,
            usage=usage,
            request_id=request_id,
            ratelimit=ratelimit,
            note="; ".join(notes) or None,
        )

    # how a redirect's host is resolved, to refuse one from a public host to a private address
    # (batchgen.provider.http.get_public)
    resolve: Resolve = staticmethod(resolve_host)

    async def _download(self, url: str, timeout: aiohttp.ClientTimeout, invalid: Invalid) -> bytes:
        if urlsplit(url).scheme not in ("http", "https"):
            raise invalid(f"refusing to download an image URL that is not http(s): {url[:80]}")
        try:
            # no Authorization header: image URLs are pre-signed, and the key must not leak
            async with get_public(self._client(), url, timeout, invalid, self.resolve) as resp:
                if resp.status != 200:  # the download failed, not the answer: not final
                    raise invalid(f"image download answered HTTP {resp.status}", final=False)
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
            msg = f"image download failed: {type(exc).__name__}: {exc}"
            raise invalid(msg, final=False) from exc
