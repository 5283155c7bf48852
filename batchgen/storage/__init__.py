"""Where a session's images go: the ``ImageStore`` seam (``base``), the run directory's
``images/`` folder (``local``: today's atomic files) or any filesystem fsspec knows
(``remote``: ``--images-to s3://bucket/prefix/``). Around the remote store: the upload journal
(``journal``), adoption on resume (``adopt``), thumbnails for reports (``cache``) and the copy
of the log beside the images (``upload``). fsspec loads only when a remote store is opened."""

from __future__ import annotations

from pathlib import Path

from batchgen.storage.base import ImageStore, StorageError
from batchgen.storage.local import LocalImages

__all__ = ["ImageStore", "LocalImages", "StorageError", "open_store"]


def open_store(
    images_to: str | None, images_dir: Path, state_dir: Path | None = None, session: int = 0
) -> ImageStore:
    """The run's ``images/`` folder when ``images_to`` is None, else the store at that URL,
    journaling each stored set under ``state_dir`` (for adoption on resume)."""
    if not images_to:
        return LocalImages(images_dir)
    # lazy: a local run (no --images-to) loads none of the remote store
    from batchgen.storage.journal import UploadJournal, journal_file
    from batchgen.storage.remote import RemoteImages

    journal = UploadJournal(journal_file(state_dir, session)) if state_dir is not None else None
    return RemoteImages(images_to, journal)
