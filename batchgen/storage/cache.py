"""Reading images back from a remote store for reports: each image's thumbnail is made once
and kept under ``RUN_DIR/cache/thumbs/`` (the next report reads the small local file; the
object is fetched again only when the cache is deleted)."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from pathlib import Path

from batchgen.images import MAX_IMAGE_PIXELS, image_pixels, sniff_ext
from batchgen.storage.remote import object_path, open_fs


def is_uri(logged: str) -> bool:
    """A logged image path that names an object (``s3://...``), not a file of the run dir."""
    return "://" in logged


def fetch(uri: str) -> bytes:
    fs, _ = open_fs(uri)
    return bytes(fs.cat_file(object_path(uri)))


def thumbnail(run_dir: Path, uri: str, px: int) -> bytes | None:
    """A JPEG of at most ``px`` × ``px`` of the object, from the cache or made now; None when
    the object cannot be read or is not an image."""
    key = hashlib.sha256(uri.encode()).hexdigest()[:32]
    cached = Path(run_dir) / "cache" / "thumbs" / f"{key}-{px}.jpg"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    try:
        data = fetch(uri)
    except Exception:
        return None
    thumb = _thumb(data, px)
    if thumb is not None:
        _write_atomic(cached, thumb)
    return thumb


def _thumb(data: bytes, px: int) -> bytes | None:
    # lazy: Pillow loads only when a thumbnail is made
    from PIL import Image

    ext = sniff_ext(data)
    pixels = image_pixels(data, ext) if ext else None
    if ext is None or pixels is None or pixels > MAX_IMAGE_PIXELS:
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (px, px))
            rgb = im.convert("RGB")
        rgb.thumbnail((px, px))
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=75)
    except Exception:
        return None
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only run dir: the report still shows the thumbnail, made each time
