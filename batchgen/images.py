"""Saving images: ``RUN_DIR/images/<job_id>_<i>.<ext>``, each written atomically.

A file appears under its final name only once complete (temp name, then rename), so a crash
leaves either the whole image or nothing, and resume can adopt what it finds. The write is not
fsynced per image (that would cost a disk flush per image at thousands per second); a process
crash or kill -9 loses nothing, since the page cache survives the process.
"""

from __future__ import annotations

import os
from pathlib import Path

from batchgen.provider.base import ImageData

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def sniff_ext(data: bytes) -> str | None:
    """The image format from its first bytes, or None if these bytes are not an image."""
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def image_name(job_id: str, index: int, ext: str, tag: str = "") -> str:
    """``<job_id>_<i>.<ext>``; a regeneration round adds its tag: ``<job_id>~r2_<i>.<ext>``
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
    for i, image in enumerate(images):
        name = image_name(job_id, i, image.ext, tag)
        final = f"{folder}/{name}"
        tmp = f"{folder}/.{name}.tmp"
        fd = os.open(tmp, _CREATE, 0o644)
        try:
            _write_all(fd, image.data)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        paths.append(f"images/{name}")
        total += len(image.data)
    return paths, total


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
