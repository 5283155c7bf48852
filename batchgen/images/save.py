"""Saving images: ``RUN_DIR/images/<job_id>_<i>.<ext>``, each written atomically.

A file appears under its final name only once complete (temp name, then rename), so a crash
leaves either the whole image or nothing, and resume can adopt what it finds. The write is not
fsynced per image (that would cost a disk flush per image at thousands per second); a process
crash or kill -9 loses nothing, since the page cache survives the process.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

from batchgen import faultpoints


@dataclass(frozen=True, slots=True)
class ImageData:
    """One image as a provider returned it."""

    data: bytes
    ext: str  # "png", "jpeg", "webp", "gif"
    revised_prompt: str | None = None


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


# a new regular file, never an existing one, never through a symlink planted at the temp name
_CREATE = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def sniff_ext(data: bytes) -> str | None:
    """The image format from its first bytes, or None if these bytes are not an image."""
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


# Pillow's own limit (Image.MAX_IMAGE_PIXELS): above it Pillow warns of a decompression bomb,
# above twice it refuses to open the file
MAX_IMAGE_PIXELS = 89_478_485


def image_pixels(data: bytes, ext: str) -> int | None:
    """Width × height from the image's header (nothing is decoded), or None when the header
    does not say. PNG and GIF are read by hand (a microsecond, on the hot path of every
    answer); JPEG and WebP by Pillow, which reads only their header too."""
    if ext == "png" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width) * int(height)
    if ext == "gif" and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width) * int(height)

    # lazy: Pillow costs ~30 ms to load; only the image paths need it
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        return MAX_IMAGE_PIXELS * 2 + 1
    except Exception:
        return None
    return width * height


def image_header(data: bytes) -> tuple[str | None, int | None]:
    """(:func:`sniff_ext`, :func:`image_pixels`): the format, and the pixels its header
    claims (None for either that the bytes do not say)."""
    ext = sniff_ext(data)
    return ext, (None if ext is None else image_pixels(data, ext))


def image_name(job_id: str, index: int, ext: str, tag: str = "") -> str:
    """``<job_id>_<i>.<ext>``; a regeneration round adds its tag: ``<job_id>~r2_<i>.<ext>``,
    a job run again after an edit its session's: ``<job_id>~s2_<i>.<ext>``
    (``~`` is not allowed in job ids, so a tagged name never reads as another job's image)."""
    return f"{job_id}{tag}_{index}.{'jpg' if ext == 'jpeg' else ext}"


def save_images(
    images_dir: Path, job_id: str, images: list[ImageData], tag: str = ""
) -> tuple[list[str], int]:
    """Write every image of one answer; returns (paths relative to the run dir, total bytes).

    Blocking, and cheap on a page cache: the pool calls it on the event loop for small
    answers, in a worker thread for large ones. Plain ``os`` calls on ``str`` paths: pathlib
    and the buffered file object cost more than the write itself at thousands per second."""
    folder = os.fspath(images_dir)
    paths, total = [], 0
    try:
        for i, image in enumerate(images):
            name = image_name(job_id, i, image.ext, tag)
            final = f"{folder}/{name}"
            tmp = f"{folder}/.{name}.tmp"
            fd = _create(tmp)
            try:
                faultpoints.fail("image:write")
                _write_all(fd, image.data)
            except BaseException:
                os.close(fd)
                _unlink_quietly(tmp)
                raise
            os.close(fd)
            os.replace(tmp, final)
            paths.append(f"images/{name}")
            total += len(image.data)
    except OSError:
        # disk full or read-only: leave no part of this answer (the job is sent again on
        # resume, and its whole set of images is what gets adopted or logged)
        for path in paths:
            _unlink_quietly(f"{folder}/{path.removeprefix('images/')}")
        raise
    return paths, total


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _create(tmp: str) -> int:
    try:
        return os.open(tmp, _CREATE, 0o644)
    except FileExistsError:
        # a temp file left by a killed process, or a planted link: unlink the name (never its
        # target) and create afresh, exclusively again
        os.unlink(tmp)
        return os.open(tmp, _CREATE, 0o644)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
