"""The local disk: today's behaviour, ``RUN_DIR/images/<job_id>_<i>.<ext>`` written
atomically by :func:`batchgen.images.save.save_images` (temp name, then rename)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from batchgen.images import ImageData, save_images

# answers up to this size are written on the event loop; larger ones in a worker thread
INLINE_SAVE_BYTES = 512 * 1024


class LocalImages:
    """An :class:`~batchgen.storage.base.ImageStore` over a local (or shared POSIX) folder."""

    __slots__ = ("folder",)

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def where(self) -> str:
        return str(self.folder)

    def inline(self, images: Sequence[ImageData]) -> bool:
        # into the page cache: cheaper than a thread hop and its hand-off of the GIL
        total = 0
        for image in images:  # (a loop, not sum() over a generator: once per answer)
            total += len(image.data)
        return total <= INLINE_SAVE_BYTES

    def save(self, job_id: str, images: list[ImageData], tag: str = "") -> tuple[list[str], int]:
        return save_images(self.folder, job_id, images, tag)
