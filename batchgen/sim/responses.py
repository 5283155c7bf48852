"""The simulator's answer bodies: OpenAI's error objects and the pieces of an ImagesResponse."""

from __future__ import annotations

import base64
import json
import math
import time
from email.utils import formatdate
from typing import Any

from batchgen.sim.models import ApiError, ImageRequest, output_tokens_per_image, text_tokens
from batchgen.sim.render import Rendered

# ImagesResponse.size is an enum in the official schema; other sizes (gpt-image-2's free
# sizes) are left out of the answer rather than sent as a value the schema rejects
_SCHEMA_SIZES = frozenset({"1024x1024", "1024x1536", "1536x1024"})

NOT_IMAGE = b"<!-- batchgen simulator: these bytes are deliberately not an image -->\n" * 8

HTML_503 = (
    "<html><head><title>503 Service Temporarily Unavailable</title></head>\n"
    "<body><center><h1>503 Service Temporarily Unavailable</h1></center>\n"
    "<hr><center>nginx (batchgen simulator)</center></body></html>\n"
)

FAULT_ERRORS: dict[str, ApiError] = {
    "auth": ApiError(
        401,
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys. (simulated auth fault)",
        code="invalid_api_key",
    ),
    "quota": ApiError(
        429,
        "You exceeded your current quota, please check your plan and billing details. "
        "(simulated quota fault)",
        type="insufficient_quota",
        code="insufficient_quota",
    ),
    "rate_limit": ApiError(
        429,
        "Rate limit reached for images per min. Please try again later. (simulated rate-limit "
        "fault)",
        type="requests",
        code="rate_limit_exceeded",
    ),
    "content_policy": ApiError(
        400,
        "Your request was rejected by the safety system. If you believe this is an error, "
        "contact us. (simulated content-policy fault)",
        type="image_generation_user_error",
        code="moderation_blocked",
    ),
    "server": ApiError(
        500,
        "The server had an error while processing your request. Sorry about that! "
        "(simulated server fault)",
        type="server_error",
    ),
}


def missing_key() -> ApiError:
    msg = (
        "You didn't provide an API key. You need to provide your API key in an Authorization "
        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
    )
    return ApiError(401, msg, code="invalid_api_key")


def wrong_key() -> ApiError:
    # never echo the key, not even masked: messages end up in logs and reports
    msg = "Incorrect API key provided. Check the key the simulator was started with (api_key)."
    return ApiError(401, msg, code="invalid_api_key")


def server_rate_limited(
    model: str, kind: str, limit: float | None, wait_s: float, requested: int | None = None
) -> ApiError:
    """OpenAI's 429 text for a limit it states ("... on images per min (IPM): Limit 5, Used 5,
    Requested 1. Please try again in 12s. Visit ... to learn more.")."""
    unit = "requests per min (RPM)" if kind == "requests" else "images per min (IPM)"
    used = f", Used {int(limit or 0)}, Requested {requested}" if requested is not None else ""
    msg = (
        f"Rate limit reached for {model} in organization org-sim on {unit}: Limit "
        f"{int(limit or 0)}{used}. Please try again in {_human(wait_s)}. Visit "
        "https://platform.openai.com/account/rate-limits to learn more."
    )
    return ApiError(429, msg, type="requests", code="rate_limit_exceeded")


# a plain 429 from a gateway or a self-hosted server: no limit named, no wait
PLAIN_RATE_LIMITED = ApiError(
    429, "Rate limit exceeded", type="rate_limit_error", code="rate_limit_exceeded"
)


# a server-side limit's 429 from a gateway that announces nothing (ratelimit_headers=False)
GENERIC_RATE_LIMITED = ApiError(
    429, "Too Many Requests", type="rate_limit_error", code="rate_limit_exceeded"
)


def concurrency_limited() -> ApiError:
    """The 429 of a provider that caps the tasks one key may have running."""
    return ApiError(
        429,
        "Too many concurrent requests",
        type="rate_limit_error",
        code="concurrency_limit_exceeded",
    )


def retry_headers(wait_s: float, mode: str = "both", wall: float | None = None) -> dict[str, str]:
    """The 429's hint in the style ``mode`` (config.RETRY_AFTER_MODES): ``retry-after-ms``
    (exact), ``retry-after`` as whole delta-seconds rounded up (RFC 9110), both, an HTTP-date
    (whole seconds, so rounded up too: never earlier than the request could pass), or none."""
    out: dict[str, str] = {}
    if mode in ("both", "ms"):
        out["retry-after-ms"] = str(max(1, math.ceil(wait_s * 1000)))
    if mode in ("both", "seconds"):
        out["retry-after"] = str(max(1, math.ceil(wait_s)))
    elif mode == "date":
        at = math.ceil((time.time() if wall is None else wall) + wait_s)
        out["retry-after"] = formatdate(at, usegmt=True)
    return out


def _human(seconds: float) -> str:
    """OpenAI's "try again in" durations: ``566ms``, ``1.234s``, ``12s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds >= 10:
        return f"{math.ceil(seconds)}s"
    return f"{seconds:.3f}s"


def revised_prompt(prompt: str) -> str:
    return f"A detailed, vivid illustration of the following: {prompt}"


def b64_item(img: Rendered, fault: str | None, revised: str | None) -> bytes:
    """One ``data[]`` entry as JSON bytes; the healthy case reuses the cached fragment."""
    if fault == "bad_base64":
        b64 = _broken_base64(img.b64)
    elif fault == "not_image":
        b64 = base64.b64encode(NOT_IMAGE).decode("ascii")
    elif revised is None:
        return img.b64_item
    else:
        b64 = img.b64
    item = {"b64_json": b64}
    if revised is not None:
        item["revised_prompt"] = revised
    return json.dumps(item).encode()


def _broken_base64(b64: str) -> str:
    # 4k+1 data characters can never decode, even with a lenient decoder that drops the '%'
    head = b64[: (len(b64) // 8) * 4 + 1]
    return head + "%%"


def response_fields(req: ImageRequest, image_tokens: int = 0) -> dict[str, Any]:
    """The fields after ``data`` for GPT image models: format, quality, size, usage (an
    edit's input images as ``input_tokens_details.image_tokens``)."""
    out_per_image = output_tokens_per_image(req.quality or "medium", req.width, req.height)
    text = text_tokens(req.prompt)
    output = out_per_image * req.n
    fields: dict[str, Any] = {
        "background": req.background,
        "output_format": req.output_format,
        "quality": req.quality,
    }
    if req.size in _SCHEMA_SIZES:
        fields["size"] = req.size
    fields["usage"] = {
        "input_tokens": text + image_tokens,
        "input_tokens_details": {"text_tokens": text, "image_tokens": image_tokens},
        "output_tokens": output,
        "output_tokens_details": {"image_tokens": output, "text_tokens": 0},
        "total_tokens": text + image_tokens + output,
    }
    return fields
