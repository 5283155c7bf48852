"""Input images of an edit job (``POST /images/edits``): resolved, checked and hashed before
anything is sent.

A job with ``image`` (one) or ``images`` (several), each a local path (relative to the job
file), an http(s) URL or a provider file id (``file-...``), and an optional ``mask`` is an
edit. The limits are those of the official schema (CreateImageEditRequest): GPT image models
take up to 16 PNG / WebP / JPEG images under 50 MB each; dall-e-2 one square PNG under 4 MB;
a mask is a PNG under 4 MB with the first image's dimensions.

Each local file is read once per (path, mtime, size) — a spec that sends one photo with many
prompts hashes it once — and its sha256 goes into the job's fingerprint, so editing a source
photo makes resume redo that job.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from batchgen.images import sniff_ext
from batchgen.jobs.formats import csv_delimiter, first_content_line, kind_of, show

# OpenAI models known to take no edits
NO_EDIT_MODELS = frozenset({"dall-e-3"})
MAX_IMAGES = 16
MAX_IMAGE_BYTES = 50 * 1024 * 1024  # "less than 50MB" (GPT image models)
MAX_DALLE2_BYTES = 4 * 1024 * 1024  # dall-e-2 image and every mask: "less than 4MB"
ALLOWED_FORMATS = ("png", "webp", "jpeg")
_CACHE_MAX = 4096


@dataclass(frozen=True, slots=True)
class InputImage:
    """One input of an edit. ``kind``: path / url / file_id. ``sha256`` is the content hash of
    a local file; for a URL or file id it is the reference itself (its content is the
    provider's). ``width``/``height`` are 0 when unknown (remote inputs)."""

    role: str  # "image" or "mask"
    ref: str  # as written in the job
    kind: str
    path: str | None
    sha256: str
    fmt: str | None = None
    width: int = 0
    height: int = 0

    @property
    def log_hash(self) -> str:
        return f"sha256:{self.sha256}" if self.kind == "path" else f"{self.kind}:{self.ref}"


@dataclass(frozen=True, slots=True)
class _FileFacts:
    sha256: str
    fmt: str | None
    width: int
    height: int
    size: int


_FACTS: OrderedDict[tuple[str, int, int], _FileFacts] = OrderedDict()


def _sniff(head: bytes) -> str | None:
    return sniff_ext(head)


def _dimensions(path: str) -> tuple[int, int]:
    # lazy: Pillow costs ~30 ms to load; only the image paths need it
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:  # reads the header only
                return img.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return 0, 0


class NotAnImageFile(OSError):
    """A local input that is not a regular file (a FIFO, a device) or too big to send: refused
    before it is read (a FIFO would block, /dev/zero never ends, a sparse file is huge)."""


def open_input(path: str, limit: int = MAX_IMAGE_BYTES) -> tuple[BinaryIO, int]:
    """``path`` opened for reading without blocking on a FIFO, checked to be a regular file
    of at most ``limit`` bytes (by its size, before a byte is read); (file, size)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotAnImageFile(f"{path} is not a regular file (a pipe, a device or a socket)")
        if st.st_size > limit:
            raise NotAnImageFile(
                f"{path} is {st.st_size / 1e6:,.1f} MB, over the {limit / 1e6:.0f} MB an input "
                "image may be"
            )
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def read_input(path: str, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a local input, refused as :func:`open_input` does; never more than
    ``limit`` bytes read (a file that grows while it is read is refused)."""
    f, _ = open_input(path, limit)
    with f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise NotAnImageFile(f"{path} grew past {limit / 1e6:.0f} MB while it was read")
    return data


def file_facts(path: str) -> _FileFacts:
    """sha256, format, dimensions and size of a local file (cached by path, mtime, size).
    Raises OSError when it cannot be read, NotAnImageFile when it is not a regular file or
    is over the size an input may be (checked before it is hashed)."""
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    hit = _FACTS.get(key)
    if hit is not None and stat.S_ISREG(st.st_mode):
        _FACTS.move_to_end(key)
        return hit
    digest = hashlib.sha256()
    f, size = open_input(path)
    with f:
        head = f.read(1 << 16)
        digest.update(head)
        left = MAX_IMAGE_BYTES + 1 - len(head)
        while left > 0 and (chunk := f.read(min(1 << 20, left))):
            digest.update(chunk)
            left -= len(chunk)
    if left <= 0:
        raise NotAnImageFile(f"{path} grew past {MAX_IMAGE_BYTES / 1e6:.0f} MB while it was read")
    fmt = _sniff(head)
    width, height = _dimensions(path) if fmt is not None else (0, 0)
    facts = _FileFacts(digest.hexdigest(), fmt, width, height, size)
    _FACTS[key] = facts
    while len(_FACTS) > _CACHE_MAX:
        _FACTS.popitem(last=False)
    return facts


def has_inputs(fields: dict[str, Any]) -> bool:
    return "image" in fields or "images" in fields or "mask" in fields


def _refs(fields: dict[str, Any]) -> tuple[list[Any], list[str]]:
    problems: list[str] = []
    if "image" in fields and "images" in fields:
        problems.append('both "image" and "images": use "image" for one, "images" for several')
    if "images" in fields:
        value = fields["images"]
        refs = value if isinstance(value, list) else [value]
    elif "image" in fields:
        refs = [fields["image"]]
    else:
        refs = []
        problems.append('"mask" without an image: add "image": "photo.png" (the mask edits it)')
    return refs, problems


def _kind(ref: str) -> str:
    low = ref.lower()
    if low.startswith(("http://", "https://")):
        return "url"
    if ref.startswith("file-") and "/" not in ref and "." not in ref:
        return "file_id"
    return "path"


def _one(role: str, ref: Any, base: Path, field: str) -> InputImage | str:
    if not isinstance(ref, str) or not ref.strip():
        return (
            f'"{field}" must hold a path, an http(s) URL or a file id as a string, got '
            f"{show(ref)} ({kind_of(ref)}): write it in quotes"
        )
    kind = _kind(ref)
    if kind != "path":
        return InputImage(role, ref, kind, None, hashlib.sha256(ref.encode()).hexdigest())
    path = Path(ref).expanduser()
    if not path.is_absolute():
        path = base / path
    where = str(path)
    if not path.exists() or path.is_dir():
        what = "is a directory" if path.is_dir() else "does not exist"
        return f'{role} "{ref}" {what} ({where}): check the path (relative to the job file)'
    try:
        facts = file_facts(where)
    except NotAnImageFile as exc:
        return f'{role} "{ref}" is refused: {exc}; give a PNG, JPEG or WebP file'
    except OSError as exc:
        return f'{role} "{ref}" cannot be read ({exc.strerror or exc}): check its permissions'
    return InputImage(role, ref, "path", where, facts.sha256, facts.fmt, facts.width, facts.height)


def resolve_inputs(
    fields: dict[str, Any], base: Path, model: str | None
) -> tuple[tuple[InputImage, ...], list[str]]:
    """The job's input images (images first, then the mask) and what is wrong with them
    (messages naming the fix, without FILE:LINE)."""
    refs, problems = _refs(fields)
    field = "images" if "images" in fields else "image"
    found: list[InputImage] = []
    for ref in refs:
        got = _one("image", ref, base, field)
        (problems.append if isinstance(got, str) else found.append)(got)  # type: ignore[arg-type]
    mask: InputImage | None = None
    if "mask" in fields:
        got = _one("mask", fields["mask"], base, "mask")
        if isinstance(got, str):
            problems.append(got)
        else:
            mask = got
    if not refs and "images" in fields:
        problems.append('"images" is empty: list at least one image')
    problems += _limits(found, mask, model)
    inputs = (*found, mask) if mask is not None else tuple(found)
    return inputs, problems


def _limits(images: list[InputImage], mask: InputImage | None, model: str | None) -> list[str]:
    problems: list[str] = []
    if model in NO_EDIT_MODELS or (model or "").startswith("dall-e-3"):
        problems.append(
            f"{model} does not take edits (input images): use gpt-image-1, gpt-image-1-mini, "
            "gpt-image-1.5 or dall-e-2, or remove the image"
        )
        return problems
    dalle2 = model == "dall-e-2"
    most = 1 if dalle2 else MAX_IMAGES
    if len(images) > most:
        problems.append(
            f"{len(images)} input images; {model or 'the model'} takes at most {most}: "
            "split the job, or keep the most important images"
        )
    for img in images:
        if img.kind != "path":
            continue
        size = os.stat(img.path or "").st_size if img.path else 0
        if img.fmt not in ALLOWED_FORMATS:
            what = f"a {img.fmt.upper()}" if img.fmt else "not an image Pillow knows"
            problems.append(
                f'image "{img.ref}" is {what}: edits take PNG, WebP or JPEG; convert it '
                "(e.g. to PNG)"
            )
            continue
        limit = MAX_DALLE2_BYTES if dalle2 else MAX_IMAGE_BYTES
        if size >= limit:
            problems.append(
                f'image "{img.ref}" is {size / 1e6:.1f} MB; {model or "the model"} takes images '
                f"under {limit // (1024 * 1024)} MB: downscale or recompress it"
            )
        if dalle2 and (img.fmt != "png" or img.width != img.height):
            problems.append(
                f'image "{img.ref}" must be a square PNG for dall-e-2 '
                f"(it is a {img.width}x{img.height} {img.fmt}): crop it, or use a gpt-image model"
            )
    if mask is not None and mask.kind == "path":
        problems += _mask_problems(mask, images[0] if images else None)
    return problems


def _mask_problems(mask: InputImage, first: InputImage | None) -> list[str]:
    if mask.fmt != "png":
        what = f"a {mask.fmt.upper()}" if mask.fmt else "not an image"
        return [f'mask "{mask.ref}" is {what}: a mask must be a PNG with an alpha channel']
    size = os.stat(mask.path or "").st_size
    if size >= MAX_DALLE2_BYTES:
        return [f'mask "{mask.ref}" is {size / 1e6:.1f} MB; masks must be under 4 MB']
    if (
        first is not None
        and first.kind == "path"
        and first.width
        and ((mask.width, mask.height) != (first.width, first.height))
    ):
        msg = (
            f'mask "{mask.ref}" is {mask.width}x{mask.height} but the first image '
            f'"{first.ref}" is {first.width}x{first.height}: a mask must have the same '
            "dimensions as the image it edits; resize the mask"
        )
        return [msg]
    return []


def input_image_tokens(width: int, height: int, fidelity: str | None = None) -> int:
    """Tokens an input image is billed as (an estimate, used by the quote and the simulator):
    scaled to fit 2048x2048, then its short side to 512, counted in 512-px tiles at 129
    tokens each plus 65; ``input_fidelity: high`` adds a flat 4,096 (gpt-image-1's
    high-fidelity surcharge for a 1024-px image, rounded). Unknown sizes count as 1024x1024."""
    w, h = (float(width), float(height)) if width and height else (1024.0, 1024.0)
    scale = min(1.0, 2048 / max(w, h))
    w, h = w * scale, h * scale
    scale = 512 / min(w, h)
    w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return 65 + 129 * tiles + (4096 if fidelity == "high" else 0)


def job_input_tokens(inputs: tuple[InputImage, ...], fidelity: Any) -> int:
    fid = fidelity if isinstance(fidelity, str) else None
    return sum(input_image_tokens(i.width, i.height, fid) for i in inputs if i.role == "image")


_INPUT_KEY = re.compile(rb'"(?:image|images|mask)"\s*:')


def may_have_inputs(path: str | Path) -> bool:
    """Whether a job file may hold edit jobs (cheap, conservative: a byte scan, no parsing).
    Resume keeps no job index for such a file: an input photo can change while the file
    does not, so its fingerprints must be computed afresh."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        return True

    head = first_content_line(path) or ""
    if not head.startswith(("{", "[")):
        cells = [c.strip().strip('"').lower() for c in head.split(csv_delimiter(head))]
        if {"image", "images", "mask"} & set(cells):
            return True
    tail = b""
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            if _INPUT_KEY.search(tail + chunk):
                return True
            tail = chunk[-16:]
    return False


def portable_body(body: dict[str, Any], inputs: tuple[InputImage, ...]) -> dict[str, Any]:
    """The body with local inputs as absolute paths: a job written to another file (``batchgen
    jobs -o``) still finds its photos."""
    if not inputs:
        return body
    where = {(i.role, i.ref): i.path for i in inputs if i.kind == "path"}

    def fix(role: str, ref: Any) -> Any:
        return where.get((role, ref), ref) if isinstance(ref, str) else ref

    out = dict(body)
    for key in ("image", "images"):
        if key in out:
            value = out[key]
            out[key] = (
                [fix("image", v) for v in value] if isinstance(value, list) else fix("image", value)
            )
    if "mask" in out:
        out["mask"] = fix("mask", out["mask"])
    return out
