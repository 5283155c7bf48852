"""The images of a Batch API output line (batchgen.batch.collect), checked as the live path
checks an answer (batchgen.provider.openai): base64 that decodes (MIME lines too), bytes that
are an image and no decompression bomb, and no more than the job's ``n`` of them."""

from __future__ import annotations

import binascii
from typing import Any

from batchgen.batch.lines import text
from batchgen.images import MAX_IMAGE_PIXELS, image_header
from batchgen.provider.base import ImageData
from batchgen.provider.http import b64decode


class LineError(Exception):
    """A line that is not what the Batch API writes: logged as invalid_response."""


def has_images(body: Any) -> bool:
    data = body.get("data") if isinstance(body, dict) else None
    return isinstance(data, list) and any(
        isinstance(i, dict) and isinstance(i.get("b64_json"), str) for i in data
    )


def line_images(body: Any, n: int) -> tuple[list[ImageData], str | None]:
    """The line's images, checked as the live path checks them (batchgen.provider.openai):
    the first ``n`` only (and a note saying how many came), none a decompression bomb."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not data:
        raise LineError("the 200 line has no images (`data` is missing or empty)")
    note = None
    if len(data) > n:
        note = f"the answer held {len(data)} images for n={n}: kept the first {n}"
        data = data[:n]
    out = []
    for i, item in enumerate(data):
        b64 = item.get("b64_json") if isinstance(item, dict) else None
        if not b64 or not isinstance(b64, str):
            raise LineError(f"data[{i}] has no b64_json (batch image answers carry base64)")
        try:
            raw = b64decode(b64)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise LineError(f"data[{i}].b64_json is not valid base64 ({exc})") from exc
        ext, pixels = image_header(raw)
        if ext is None:
            raise LineError(f"data[{i}] is {len(raw)} bytes that are not a PNG/JPEG/WebP/GIF")
        if pixels is not None and pixels > MAX_IMAGE_PIXELS:
            raise LineError(
                f"data[{i}] is a decompression bomb: its header claims {pixels:,} pixels "
                f"(Pillow's limit is {MAX_IMAGE_PIXELS:,}); not saved"
            )
        out.append(ImageData(raw, ext, text(item.get("revised_prompt"))))
    return out, note
