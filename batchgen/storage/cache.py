"""Reading a run's images back as their log rows name them: a file of the run directory
(``images/x_0.png``) or an object (``s3://bucket/prefix/x_0.png``, ``--images-to``). The one way
for what reads images after a run (the report, the scorer):

    read_image(run_dir, logged) -> bytes | None     the image's bytes, wherever it is
    thumbnail(run_dir, uri, px) -> bytes | None     an object's JPEG thumbnail, made once and kept
                                                    under RUN_DIR/cache/thumbs/ (the next report
                                                    reads the small local file; the object is
                                                    fetched again only if the cache is deleted)
"""

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


def local_file(run_dir: Path, logged: str) -> Path:
    """Where a logged relative path is on disk (an older run's rows may name the file by its
    name alone: then it is in ``images/``)."""
    p = Path(logged)
    if p.is_absolute():
        return p
    direct = Path(run_dir) / p
    return direct if direct.exists() else Path(run_dir) / "images" / p.name


def read_image(run_dir: Path, logged: str) -> bytes | None:
    """The bytes of the image a log row names; None when it cannot be read (a file or an
    object gone, a store refusing). Credentials are the store's own (storage.remote)."""
    try:
        return fetch(logged) if is_uri(logged) else local_file(run_dir, logged).read_bytes()
    except Exception:  # any backend's error: the caller shows or counts the image as missing
        return None


def fetch(uri: str) -> bytes:
    fs, _ = open_fs(uri)
    return bytes(fs.cat_file(object_path(uri)))


def store(uri: str, data: bytes) -> None:
    """Write a small object whole at ``uri`` (a sidecar beside an image object)."""
    fs, _ = open_fs(uri)
    fs.pipe_file(object_path(uri), data)


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
    thumb = jpeg_thumbnail(data, px)
    if thumb is not None:
        _write_atomic(cached, thumb)
    return thumb


def jpeg_thumbnail(data: bytes, px: int) -> bytes | None:
    """A JPEG of at most ``px`` × ``px`` of an image's bytes; None when they are not an image
    or one bigger than the decompression-bomb bound (read from its header, before decoding)."""
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
