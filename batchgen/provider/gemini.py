"""Gemini image models: ``POST {base_url}/models/{model}:generateContent`` with the key in
``x-goog-api-key``; images come back as base64 ``inlineData`` parts.

The job's fields become Gemini's: ``prompt`` → a text part; ``size`` ("1536x1024") or an
explicit ``aspect_ratio`` ("3:2") → ``imageConfig.aspectRatio`` (the nearest ratio Gemini
takes); ``image_size`` ("1K", "2K", "4K") → ``imageConfig.imageSize``. One request makes one
image; a job with n > 1 keeps what the answer holds, at most n.

Errors (``{"error": {"code", "message", "status", "details"}}``) map to the taxonomy in
:meth:`GeminiImages._error`, the one place; a 200 whose prompt or candidate was blocked
(``promptFeedback.blockReason``, ``finishReason`` SAFETY / IMAGE_SAFETY / PROHIBITED_CONTENT
...) with no image is content_policy.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from batchgen.errors import AttemptError, ErrorClass, classify_http
from batchgen.errors import parse_reset_duration as _duration
from batchgen.jobs.model import Job
from batchgen.provider.base import GenerateResult, ImageData, Usage
from batchgen.provider.http import JsonHttp, b64_image
from batchgen.provider.transport import KeyedSession, ratelimit_headers
from batchgen.provider.usage import MAX_TOKENS

RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
_BLOCKED = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
        "OTHER",
    }
)
_STATUS_CLASS = {
    "UNAUTHENTICATED": ErrorClass.AUTH,
    "PERMISSION_DENIED": ErrorClass.AUTH,
    "INVALID_ARGUMENT": ErrorClass.BAD_REQUEST,
    "NOT_FOUND": ErrorClass.BAD_REQUEST,
    "OUT_OF_RANGE": ErrorClass.BAD_REQUEST,
    "FAILED_PRECONDITION": ErrorClass.AUTH,  # billing not enabled, region not supported
    "INTERNAL": ErrorClass.SERVER,
    "UNAVAILABLE": ErrorClass.SERVER,
    "DEADLINE_EXCEEDED": ErrorClass.TIMEOUT,
}


def aspect_ratio(body: dict[str, Any]) -> str | None:
    given = body.get("aspect_ratio")
    if isinstance(given, str) and given:
        return given
    size = body.get("size")
    if not isinstance(size, str) or "x" not in size:
        return None
    try:
        w, h = (int(v) for v in size.lower().split("x", 1))
    except ValueError:
        return None
    if w <= 0 or h <= 0:
        return None

    def off(ratio: str) -> float:
        a, b = ratio.split(":")
        return abs(int(a) / int(b) - w / h)

    return min(RATIOS, key=off)


def request_body(job: Job) -> dict[str, Any]:
    return body_request(job.body)


def body_request(body: dict[str, Any]) -> dict[str, Any]:
    """A job's (OpenAI-shaped) body as a Gemini GenerateContentRequest."""
    image_config: dict[str, Any] = {}
    if ratio := aspect_ratio(body):
        image_config["aspectRatio"] = ratio
    if isinstance(body.get("image_size"), str):
        image_config["imageSize"] = body["image_size"]
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    if image_config:
        config["imageConfig"] = image_config
    return {
        "contents": [{"role": "user", "parts": [{"text": str(body.get("prompt") or "")}]}],
        "generationConfig": config,
    }


def _tokens(value: Any) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS
    return int(value) if ok else 0


def parse_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = _tokens(_field(raw, "promptTokenCount", "prompt_token_count"))
    return Usage(
        prompt, prompt, 0, _tokens(_field(raw, "candidatesTokenCount", "candidates_token_count"))
    )


def gemini_error(
    session: KeyedSession, status: int, body: bytes, headers: Any, ctype: str
) -> AttemptError:
    """Gemini's error answer → the taxonomy (the one place for this protocol; the Batch API
    client shares it: batchgen/batch/gemini.py)."""
    is_html = "html" in ctype or body.lstrip()[:1] == b"<"
    err: dict[str, Any] = {}
    if not is_html:
        try:
            found = orjson.loads(body).get("error")
            err = found if isinstance(found, dict) else {}
        except (ValueError, AttributeError):
            err = {}
    code = session.code_text(err.get("status"))
    message = session.field_text(err.get("message") or "") or f"HTTP {status}"
    found_details = err.get("details")
    details: list[Any] = found_details if isinstance(found_details, list) else []
    reasons = " ".join(str(d.get("reason", "")) for d in details if isinstance(d, dict))
    retry_after = None
    for d in details:
        if isinstance(d, dict) and isinstance(d.get("retryDelay"), str):
            retry_after = _duration(d["retryDelay"])
    klass = _STATUS_CLASS.get(code or "")
    if "API_KEY_INVALID" in reasons or "API key not valid" in message:
        klass = ErrorClass.AUTH
    elif code == "RESOURCE_EXHAUSTED" or status == 429:
        text = f"{message} {orjson.dumps(details).decode()}".lower()
        # a daily quota or an empty prepaid balance does not clear within a run
        quota = any(w in text for w in ("billing", "credit", "perday", "per day", "prepay"))
        klass = ErrorClass.QUOTA if quota else ErrorClass.RATE_LIMIT
    if klass is None:
        klass = classify_http(status, None, is_html=is_html)
    return AttemptError(
        klass,
        message,
        http_status=status,
        code=code,
        retry_after_s=retry_after,
        ratelimit=ratelimit_headers(headers),
    )


class GeminiImages(JsonHttp):
    name = "gemini"
    key_header = "x-goog-api-key"

    def __init__(self, base_url: str, api_key: str, *, connections: int = 100) -> None:
        super().__init__(base_url, api_key, connections=connections)
        self._headers = {
            "x-goog-api-key": api_key,
            "Content-Type": "application/json",
            "User-Agent": "batchgen",
        }

    def url(self, model: str) -> str:
        return f"{self.base_url}/models/{quote(model, safe='.-_')}:generateContent"

    async def generate(self, job: Job, *, timeout: float) -> GenerateResult:
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        data = orjson.dumps(request_body(job))

        async def work() -> GenerateResult:
            status, headers, body, ctype = await self._request(
                "POST",
                self.url(str(job.model)),
                headers=self._headers,
                data=data,
                timeout=client_timeout,
            )
            if status != 200:
                raise self._error(status, body, headers, ctype)
            return self._parse(job, body, headers)

        return await self._guarded(timeout, work)

    def _error(self, status: int, body: bytes, headers: Any, ctype: str) -> AttemptError:
        """Gemini's error answer → the taxonomy (the one place for this protocol)."""
        return gemini_error(self, status, body, headers, ctype)

    def _parse(self, job: Job, body: bytes, headers: Any) -> GenerateResult:
        ratelimit = ratelimit_headers(headers)
        usage: list[Usage | None] = [None]

        def invalid(msg: str, *, final: bool = True) -> AttemptError:
            return AttemptError(
                ErrorClass.INVALID_RESPONSE,
                self._redact(msg),
                http_status=200,
                ratelimit=ratelimit,
                usage=usage[0],
                final=final,
            )

        payload = self._json(body, invalid)
        usage[0] = parse_usage(_field(payload, "usageMetadata", "usage_metadata"))
        request_id = self._text(_field(payload, "responseId", "response_id"), 200)
        images: list[ImageData] = []
        reasons: list[str] = []
        feedback = _field(payload, "promptFeedback", "prompt_feedback")
        blocked = _field(feedback, "blockReason", "block_reason")
        if blocked:
            reasons.append(str(blocked))
        candidates = payload.get("candidates")
        for c, cand in enumerate(candidates if isinstance(candidates, list) else []):
            if not isinstance(cand, dict):
                continue
            finish = _field(cand, "finishReason", "finish_reason")
            if finish in _BLOCKED:
                reasons.append(str(finish))
            content = cand.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for p, part in enumerate(parts if isinstance(parts, list) else []):
                inline = _field(part, "inlineData", "inline_data")
                if isinstance(inline, dict) and len(images) < job.n:
                    where = f"candidates[{c}].parts[{p}].inlineData"
                    # base64, or a gateway's data: URL there (b64_image takes both)
                    images.append(b64_image(inline.get("data"), where, invalid))
        if not images:
            if reasons:
                reason = self._text(reasons[0], 200)
                msg = f"the prompt or its image was blocked by Gemini's safety filters ({reason})"
                raise AttemptError(
                    ErrorClass.CONTENT_POLICY,
                    msg,
                    http_status=200,
                    code=reason,
                    request_id=request_id,
                    usage=usage[0],
                )
            raise invalid("the 200 answer holds no image (no inlineData part)")
        return GenerateResult(
            images=images, usage=usage[0], request_id=request_id, ratelimit=ratelimit
        )


def _field(obj: Any, camel: str, snake: str) -> Any:
    """``obj[camel]``, or ``obj[snake]``: protobuf's JSON mapping takes both spellings, and
    a gateway that dumps the google-genai SDK's objects (``model_dump()``) writes snake_case."""
    if not isinstance(obj, dict):
        return None
    found = obj.get(camel)
    return found if found is not None else obj.get(snake)
