"""``POST /v1/images/edits`` for the simulator: multipart (CreateImageEditRequest) and JSON
(EditImageBodyJsonParam), checked the way the real endpoint checks them, then answered by the
same path as a generation (faults, limits, rendering) with the input images' tokens added to
``usage``.

Checks: a model that takes edits (GPT image models, dall-e-2; JSON only for GPT models); 1 to
16 images (dall-e-2: one square PNG under 4 MB); each a PNG, WebP or JPEG under 50 MB; a mask
that is a PNG under 4 MB with the first image's dimensions; ``input_fidelity`` high or low.
Remote inputs (http(s) URLs, file ids) are not fetched: they count as 1024x1024.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from PIL import Image

from batchgen.images import sniff_ext
from batchgen.jobs.inputs import input_image_tokens
from batchgen.sim.models import ApiError

EDIT_GPT_MODELS = frozenset(
    {
        "gpt-image-1",
        "gpt-image-1-mini",
        "gpt-image-1.5",
        "gpt-image-2",
        "gpt-image-2-2026-04-21",
        "chatgpt-image-latest",
    }
)
DEFAULT_EDIT_MODEL = "gpt-image-1.5"
MAX_IMAGES = 16
MAX_BYTES = 50 * 1024 * 1024
MAX_SMALL_BYTES = 4 * 1024 * 1024
_EDIT_ONLY = ("image", "image[]", "images", "mask", "input_fidelity")
_INT_PARAMS = ("n", "output_compression", "partial_images")


@dataclass(frozen=True, slots=True)
class EditRequest:
    """What the generation path needs: the body without inputs, the input image tokens."""

    body: dict[str, Any]
    image_tokens: int
    images: int


@dataclass(frozen=True, slots=True)
class _Input:
    data: bytes | None  # None: remote (URL or file id)
    name: str


def _invalid(message: str, param: str, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


async def parse_edit(request: web.Request, extra_models: tuple[str, ...]) -> EditRequest:
    """The edit request, checked; raises ApiError as the real endpoint would answer."""
    if request.content_type == "multipart/form-data":
        body, images, mask = await _multipart(request)
        json_form = False
    else:
        raw = await request.read()
        try:
            loaded = json.loads(raw)
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict):
            msg = (
                "We could not parse the body of your request. Send multipart/form-data "
                "(CreateImageEditRequest) or a JSON object (EditImageBodyJsonParam)."
            )
            raise ApiError(400, msg)
        body = loaded
        images, mask = _json_inputs(body)
        json_form = True
    model = body.get("model") or DEFAULT_EDIT_MODEL
    body["model"] = model
    dalle2 = model == "dall-e-2"
    if model not in EDIT_GPT_MODELS and not dalle2 and model not in extra_models:
        raise _invalid(
            f"Invalid model {model}. The model does not support image edits: use a GPT image "
            "model or dall-e-2.",
            "model",
        )
    if json_form and dalle2:
        raise _invalid(
            "JSON edits support GPT image models only; send dall-e-2 as multipart.", "model"
        )
    if not images:
        raise _invalid(
            "Missing required parameter: 'image'.", "image", "missing_required_parameter"
        )
    most = 1 if dalle2 else MAX_IMAGES
    if len(images) > most:
        raise _invalid(f"Too many images: {len(images)} given, at most {most}.", "image")
    fidelity = body.get("input_fidelity")
    if fidelity is not None and (fidelity not in ("high", "low") or dalle2):
        raise _invalid(
            f"Invalid value for 'input_fidelity': {fidelity!r}. Supported values "
            "are 'high' and 'low' (GPT image models).",
            "input_fidelity",
        )
    sizes = [_check_image(img, i, dalle2) for i, img in enumerate(images)]
    if mask is not None:
        _check_mask(mask, sizes[0])

    tokens = sum(input_image_tokens(w, h, fidelity) for w, h in sizes) if not dalle2 else 0
    gen = {k: v for k, v in body.items() if k not in _EDIT_ONLY}
    return EditRequest(gen, tokens, len(images))


async def _multipart(request: web.Request) -> tuple[dict[str, Any], list[_Input], _Input | None]:
    try:
        form = await request.post()
    except ValueError as exc:  # too large, malformed
        raise ApiError(400, f"Could not read the multipart body: {exc}") from exc
    body: dict[str, Any] = {}
    images: list[_Input] = []
    mask: _Input | None = None
    for name, value in form.items():
        if name in ("image", "image[]"):
            images.append(_file(value, name))
        elif name == "mask":
            mask = _file(value, name)
        elif isinstance(value, str):
            body[name] = _form_value(name, value)
    return body, images, mask


def _file(value: Any, name: str) -> _Input:
    if isinstance(value, web.FileField):
        return _Input(value.file.read(), value.filename or name)
    if isinstance(value, str | bytes):
        raw = value.encode() if isinstance(value, str) else value
        return _Input(raw, name)
    raise _invalid(f"'{name}' must be a file upload.", name)


def _form_value(name: str, value: str) -> Any:
    if name in _INT_PARAMS:
        try:
            return int(value)
        except ValueError:
            raise _invalid(
                f"Invalid value for '{name}': {value!r} is not an integer.", name
            ) from None
    if name == "stream":
        return value.lower() == "true"
    return value


def _json_inputs(body: dict[str, Any]) -> tuple[list[_Input], _Input | None]:
    refs = body.get("images")
    if not isinstance(refs, list) or not refs:
        code = "missing_required_parameter" if refs is None else "invalid_value"
        raise _invalid("'images' must be a non-empty array of image references.", "images", code)
    images = [_json_ref(r, f"images[{i}]") for i, r in enumerate(refs)]
    mask = _json_ref(body["mask"], "mask") if body.get("mask") is not None else None
    return images, mask


def _json_ref(ref: Any, param: str) -> _Input:
    if not isinstance(ref, dict) or set(ref) - {"image_url", "file_id"} or len(ref) != 1:
        raise _invalid(
            f"'{param}' must be an object with exactly one of 'image_url' or 'file_id'.", param
        )
    if "file_id" in ref:
        return _Input(None, str(ref["file_id"]))
    url = ref["image_url"]
    if not isinstance(url, str):
        raise _invalid(f"'{param}.image_url' must be a string.", param)
    if url.startswith("data:"):
        head, _, payload = url.partition(",")
        if ";base64" not in head:
            raise _invalid(f"'{param}.image_url' must be a base64 data URL.", param)
        try:
            return _Input(base64.b64decode(payload, validate=True), param)
        except (binascii.Error, ValueError):
            raise _invalid(f"'{param}.image_url' is not valid base64.", param) from None
    if url.startswith(("http://", "https://")):
        return _Input(None, url)
    raise _invalid(f"'{param}.image_url' must be an http(s) URL or a data URL.", param)


def _kind(data: bytes) -> str | None:
    return sniff_ext(data)


def _dims(data: bytes) -> tuple[int, int]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                return img.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return 0, 0


def _check_image(img: _Input, index: int, dalle2: bool) -> tuple[int, int]:
    if img.data is None:
        return 1024, 1024
    kind = _kind(img.data)
    if kind not in ("png", "webp", "jpeg"):
        mime = f"image/{kind}" if kind else "application/octet-stream"
        raise _invalid(
            f"Invalid file 'image' ({img.name}): unsupported mimetype ('{mime}'). Supported "
            "file formats are 'image/jpeg', 'image/png', and 'image/webp'.",
            "image",
            "unsupported_file_mimetype",
        )
    limit = MAX_SMALL_BYTES if dalle2 else MAX_BYTES
    if len(img.data) >= limit:
        raise _invalid(
            f"Image {index} is too large: images must be under {limit // (1024 * 1024)} MB.",
            "image",
        )
    width, height = _dims(img.data)
    if not width:
        raise _invalid(
            f"Invalid image file or mode for image {index + 1}, please check your image file.",
            "image",
            "invalid_image_format",
        )
    if dalle2 and (kind != "png" or width != height):
        raise _invalid("Uploaded image must be a square PNG for dall-e-2.", "image")
    return width, height


def _check_mask(mask: _Input, first: tuple[int, int]) -> None:
    if mask.data is None:
        return
    if _kind(mask.data) != "png" or len(mask.data) >= MAX_SMALL_BYTES:
        raise _invalid(
            "Invalid mask: it must be a PNG file under 4 MB.", "mask", "invalid_image_format"
        )
    dims = _dims(mask.data)
    if dims != first:
        raise _invalid(
            f"Invalid mask image: its size {dims[0]}x{dims[1]} does not match the image's "
            f"{first[0]}x{first[1]}.",
            "mask",
            "invalid_mask_size",
        )
