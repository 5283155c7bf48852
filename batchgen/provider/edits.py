"""The request of an edit job (``POST {base_url}/images/edits``).

Two wire forms, both from the official schema:
* multipart/form-data (CreateImageEditRequest) when every input is a local file: the images
  as repeated ``image[]`` parts, the mask as ``mask``, every other field as a text part
  (lists and objects as JSON). This is what every provider that takes edits accepts.
* application/json (EditImageBodyJsonParam) when any input is an http(s) URL or a provider
  file id, which multipart cannot carry: ``images: [{image_url} | {file_id}]`` with local
  files inlined as base64 data URLs, ``mask`` the same way.

A file is read when its request is built (off the event loop); if its content no longer has
the hash the job was validated (and fingerprinted) with, the attempt fails as a bad request
instead of sending a photo the log would not describe.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pybase64

from batchgen.errors import AttemptError, ErrorClass
from batchgen.jobs.inputs import InputImage, read_input
from batchgen.jobs.model import Job

_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_INPUT_FIELDS = frozenset({"image", "images", "mask"})


def _read(item: InputImage) -> bytes:
    # not read_bytes(): a file swapped for a FIFO would block, /dev/zero never end
    data = read_input(item.path or "")
    if hashlib.sha256(data).hexdigest() != item.sha256:
        msg = (
            f'{item.role} "{item.ref}" changed after the job file was checked: run '
            "`batchgen resume` to send the job with its new content"
        )
        raise AttemptError(ErrorClass.BAD_REQUEST, msg)
    return data


async def _contents(job: Job) -> list[bytes | None]:
    def read_all() -> list[bytes | None]:
        return [_read(i) if i.kind == "path" else None for i in job.inputs]

    try:
        return await asyncio.to_thread(read_all)
    except OSError as exc:
        msg = f"an input image of job {job.id} cannot be read: {exc.strerror or exc}"
        raise AttemptError(ErrorClass.BAD_REQUEST, msg) from exc


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode()


async def edit_request(job: Job) -> tuple[Any, str | None]:
    """The request body and its Content-Type (None: aiohttp sets multipart's boundary)."""
    contents = await _contents(job)
    fields = {k: v for k, v in job.body.items() if k not in _INPUT_FIELDS and v is not None}
    if all(i.kind == "path" for i in job.inputs):
        form = aiohttp.FormData()
        for name, value in fields.items():
            form.add_field(name, _text(value))
        for item, data in zip(job.inputs, contents, strict=True):
            name = "mask" if item.role == "mask" else "image[]"
            filename = Path(item.ref).name or f"{item.role}.{item.fmt}"
            form.add_field(
                name, data, filename=filename, content_type=_MIME.get(item.fmt or "", "image/png")
            )
        return form, None
    refs = [_ref(item, data) for item, data in zip(job.inputs, contents, strict=True)]
    body = dict(fields)
    body["images"] = [r for r, item in zip(refs, job.inputs, strict=True) if item.role == "image"]
    mask = [r for r, item in zip(refs, job.inputs, strict=True) if item.role == "mask"]
    if mask:
        body["mask"] = mask[0]
    return orjson.dumps(body), "application/json"


def _ref(item: InputImage, data: bytes | None) -> dict[str, str]:
    if item.kind == "file_id":
        return {"file_id": item.ref}
    if item.kind == "url":
        return {"image_url": item.ref}
    b64 = pybase64.b64encode(data or b"").decode("ascii")
    return {"image_url": f"data:{_MIME.get(item.fmt or '', 'image/png')};base64,{b64}"}
