"""Model facts and request validation, answering the way OpenAI's images endpoint does."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

GPT_IMAGE_MODELS = frozenset(
    {"gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2", "gpt-image-2-2026-04-21"}
)
FREE_SIZE_MODELS = frozenset({"gpt-image-2", "gpt-image-2-2026-04-21"})
DALLE_MODELS = frozenset({"dall-e-2", "dall-e-3"})

GPT_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
DALLE3_SIZES = ("1024x1024", "1792x1024", "1024x1792")
DALLE2_SIZES = ("256x256", "512x512", "1024x1024")
PROMPT_LIMIT = {"dall-e-2": 1000, "dall-e-3": 4000}
GPT_PROMPT_LIMIT = 32000
MAX_PIXELS_EDGE = (3840, 2160)

# DESIGN.md: output tokens per image, (square, portrait 1024x1536, landscape 1536x1024)
OUTPUT_TOKENS = {
    "low": (272, 408, 400),
    "medium": (1056, 1584, 1568),
    "high": (4160, 6240, 6208),
}

KNOWN_PARAMS = frozenset(
    {
        "prompt",
        "model",
        "n",
        "quality",
        "response_format",
        "output_format",
        "output_compression",
        "stream",
        "partial_images",
        "size",
        "moderation",
        "background",
        "style",
        "user",
    }
)
# parameters that make the default model a GPT image model instead of dall-e-2
_GPT_ONLY_PARAMS = ("output_format", "output_compression", "background", "moderation")
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")


class ApiError(Exception):
    """An error answer: HTTP status and the OpenAI error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # the OpenAI field name
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """A validated request with the model's defaults applied."""

    model: str
    family: str  # "gpt", "dall-e-2", "dall-e-3", "extra"
    prompt: str
    n: int
    width: int
    height: int
    size: str  # the size actually generated ("auto" resolved)
    quality: str | None  # resolved: low/medium/high, standard/hd, or None (extra models)
    output_format: str  # png / jpeg / webp
    response_format: str  # b64_json / url
    background: str  # opaque / transparent

    @property
    def transparent(self) -> bool:
        return self.background == "transparent"


def _invalid(param: str, value: object, allowed: tuple[str, ...] | str) -> ApiError:
    supported = allowed if isinstance(allowed, str) else ", ".join(f"'{a}'" for a in allowed)
    msg = f"Invalid value: {value!r}. Supported values are: {supported}."
    return ApiError(400, msg, param=param, code="invalid_value")


def _choice(body: dict[str, Any], param: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(param)
    if value is None:
        return default
    if value not in allowed:
        raise _invalid(param, value, allowed)
    return str(value)


def validate(body: object, extra_models: tuple[str, ...] = ()) -> ImageRequest:
    """Check a CreateImageRequest body; raise :class:`ApiError` (400/404) like OpenAI would."""
    if not isinstance(body, dict):
        msg = "The request body must be a JSON object (a CreateImageRequest)."
        raise ApiError(400, msg)
    model = body.get("model")
    if model is None:
        model = (
            "gpt-image-1" if any(body.get(p) is not None for p in _GPT_ONLY_PARAMS) else "dall-e-2"
        )
    if not isinstance(model, str):
        raise _invalid("model", model, "a model name string")
    if model in GPT_IMAGE_MODELS:
        family = "gpt"
    elif model in DALLE_MODELS:
        family = model
    elif model in extra_models:
        family = "extra"
    else:
        msg = f"The model `{model}` does not exist or you do not have access to it."
        raise ApiError(404, msg, code="model_not_found")
    if family != "extra":
        unknown = sorted(set(body) - KNOWN_PARAMS)
        if unknown:
            msg = f"Unknown parameter: '{unknown[0]}'."
            raise ApiError(400, msg, param=unknown[0], code="unknown_parameter")

    prompt = body.get("prompt")
    if prompt is None:
        raise ApiError(
            400,
            "Missing required parameter: 'prompt'.",
            param="prompt",
            code="missing_required_parameter",
        )
    if not isinstance(prompt, str) or not prompt.strip():
        msg = "Invalid 'prompt': expected a non-empty string."
        raise ApiError(400, msg, param="prompt", code="invalid_value")
    limit = PROMPT_LIMIT.get(model, GPT_PROMPT_LIMIT)
    if len(prompt) > limit:
        msg = (
            f"Invalid 'prompt': string too long. Expected a string with maximum length {limit}, "
            f"but got a string with length {len(prompt)} instead."
        )
        raise ApiError(400, msg, param="prompt", code="string_above_max_length")

    n = body.get("n", 1)
    n = 1 if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
        raise _invalid("n", n, "an integer from 1 to 10")
    if family == "dall-e-3" and n != 1:
        msg = "Invalid 'n': dall-e-3 only supports n=1."
        raise ApiError(400, msg, param="n", code="invalid_value")

    if body.get("stream"):
        msg = "Streaming is not supported by the batchgen simulator; send stream=false."
        raise ApiError(400, msg, param="stream", code="invalid_value")

    if family == "gpt":
        return _validate_gpt(body, model, prompt, n)
    if family == "extra":
        return _validate_extra(body, model, prompt, n)
    return _validate_dalle(body, model, family, prompt, n)


def _validate_gpt(body: dict[str, Any], model: str, prompt: str, n: int) -> ImageRequest:
    quality = _choice(body, "quality", ("low", "medium", "high", "auto"), "auto")
    quality = "medium" if quality == "auto" else quality
    output_format = _choice(body, "output_format", ("png", "jpeg", "webp"), "png")
    background = _choice(body, "background", ("transparent", "opaque", "auto"), "auto")
    _choice(body, "moderation", ("low", "auto"), "auto")
    if body.get("response_format") not in (None, "b64_json"):
        msg = (
            f"Invalid 'response_format': {model} always returns b64_json images; "
            "drop the parameter."
        )
        raise ApiError(400, msg, param="response_format", code="invalid_value")
    if body.get("style") is not None:
        msg = "Invalid 'style': only supported for dall-e-3."
        raise ApiError(400, msg, param="style", code="invalid_value")
    compression = body.get("output_compression")
    if compression is not None and (
        isinstance(compression, bool)
        or not isinstance(compression, int)
        or not 0 <= compression <= 100
    ):
        raise _invalid("output_compression", compression, "an integer from 0 to 100")
    if background == "transparent" and output_format == "jpeg":
        msg = "Transparent background requires output_format 'png' or 'webp'."
        raise ApiError(400, msg, param="background", code="invalid_value")
    size = body.get("size") or "auto"
    if model in FREE_SIZE_MODELS and size not in GPT_SIZES:
        width, height = _free_size(size)
    else:
        size = _choice({"size": size}, "size", GPT_SIZES, "auto")
        width, height = (1024, 1024) if size == "auto" else _parse_size(size)
    return ImageRequest(
        model=model,
        family="gpt",
        prompt=prompt,
        n=n,
        width=width,
        height=height,
        size=f"{width}x{height}",
        quality=quality,
        output_format=output_format,
        response_format="b64_json",
        background="transparent" if background == "transparent" else "opaque",
    )


def _validate_dalle(
    body: dict[str, Any], model: str, family: str, prompt: str, n: int
) -> ImageRequest:
    for param in _GPT_ONLY_PARAMS:
        if body.get(param) is not None:
            msg = f"Invalid '{param}': only supported for the GPT image models, not {model}."
            raise ApiError(400, msg, param=param, code="invalid_value")
    qualities: tuple[str, ...]
    if family == "dall-e-3":
        sizes, qualities = DALLE3_SIZES, ("standard", "hd", "auto")
        _choice(body, "style", ("vivid", "natural"), "vivid")
    else:
        sizes, qualities = DALLE2_SIZES, ("standard", "auto")
        if body.get("style") is not None:
            msg = "Invalid 'style': only supported for dall-e-3."
            raise ApiError(400, msg, param="style", code="invalid_value")
    size = _choice(body, "size", sizes, "1024x1024")
    quality = _choice(body, "quality", qualities, "standard")
    response_format = _choice(body, "response_format", ("url", "b64_json"), "url")
    width, height = _parse_size(size)
    return ImageRequest(
        model=model,
        family=family,
        prompt=prompt,
        n=n,
        width=width,
        height=height,
        size=size,
        quality="standard" if quality == "auto" else quality,
        output_format="png",
        response_format=response_format,
        background="opaque",
    )


def _validate_extra(body: dict[str, Any], model: str, prompt: str, n: int) -> ImageRequest:
    # aggregator per-image models take many dialects; accept any WxH and answer b64 PNG/JPEG
    size = body.get("size") or "1024x1024"
    width, height = (1024, 1024) if size == "auto" else _parse_size(str(size), param_value=size)
    asked = body.get("output_format")
    output_format = asked if asked in ("jpeg", "webp") else "png"
    return ImageRequest(
        model=model,
        family="extra",
        prompt=prompt,
        n=n,
        width=width,
        height=height,
        size=f"{width}x{height}",
        quality=None,
        output_format=output_format,
        response_format="b64_json",
        background="opaque",
    )


def _parse_size(size: str, param_value: object = None) -> tuple[int, int]:
    match = _SIZE.match(size)
    if not match:
        raise _invalid("size", param_value if param_value is not None else size, "'WIDTHxHEIGHT'")
    return int(match[1]), int(match[2])


def _free_size(size: object) -> tuple[int, int]:
    rule = (
        "'auto' or WIDTHxHEIGHT with both divisible by 16, aspect ratio between 1:3 and 3:1, "
        "at most 3840x2160"
    )
    if not isinstance(size, str) or not _SIZE.match(size):
        raise _invalid("size", size, rule)
    width, height = _parse_size(size)
    long_edge, short_edge = max(width, height), min(width, height)
    ok = (
        width % 16 == 0
        and height % 16 == 0
        and short_edge >= 16
        and long_edge <= MAX_PIXELS_EDGE[0]
        and short_edge <= MAX_PIXELS_EDGE[1]
        and long_edge <= 3 * short_edge
    )
    if not ok:
        raise _invalid("size", size, rule)
    return width, height


def text_tokens(prompt: str) -> int:
    """Deterministic stand-in for the tokenizer: about four characters per token."""
    return math.ceil(len(prompt) / 4)


def output_tokens_per_image(quality: str, width: int, height: int) -> int:
    """DESIGN.md's table; sizes outside it scale the square figure by area."""
    square, portrait, landscape = OUTPUT_TOKENS[quality]
    if (width, height) == (1024, 1024):
        return square
    if (width, height) == (1024, 1536):
        return portrait
    if (width, height) == (1536, 1024):
        return landscape
    return round(square * (width * height) / (1024 * 1024))
