"""The storage seam: where a session's images go (``ImageStore``), and the one error a store
raises (``StorageError``, an ``OSError``: the pool stops the run with class ``disk`` and the
job stays pending, as for a full local disk)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from batchgen.images import ImageData


class StorageError(OSError):
    """An image could not be stored (the message is redacted: no credential in it)."""


class ImageStore(Protocol):
    """Writes the images of one answer, each under ``<job_id>[tag]_<i>.<ext>``.

    ``save`` returns (what the log row records for each image, total bytes): a path relative
    to the run directory for the local disk (``images/x_0.png``), the object's URI for a
    remote store (``s3://bucket/prefix/x_0.png``). A set is stored whole or not at all: on
    error nothing of it is left to adopt, and the error is a :class:`StorageError` (OSError).
    """

    @property
    def where(self) -> str:
        """For messages: the folder or the URL images go to (no credential in it)."""
        ...

    def inline(self, images: Sequence[ImageData]) -> bool:
        """True when ``save`` may run on the event loop (a page-cache write); False: in a
        worker thread (a network upload, or a large local write)."""
        ...

    def save(
        self, job_id: str, images: list[ImageData], tag: str = ""
    ) -> tuple[list[str], int]: ...
