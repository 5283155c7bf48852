"""Any filesystem fsspec knows (``s3://``, ``gs://``, ``az://``, ``memory://``, ``file://``):
each image is written there as its answer arrives, from memory (no temp copy on disk).

An object store's PUT is atomic: the object appears whole or not at all (S3: one PUT per
image, up to 5 GB, through botocore from the worker thread, ``s3put``; other stores: fsspec's
``pipe_file``, multipart where the backend does it). The local filesystem
(``file://``) is written to a temp name and renamed, as ``RUN_DIR/images`` is. Credentials are
fsspec's and the backend's own (s3fs: environment, profile, instance role; gcsfs: ADC): none
is passed here, so none can reach run.json, a row or a message; and every message is redacted
with the credentials the environment holds, in case a backend echoes one (a signature error
quotes the access key id).

fsspec is imported only when a store is opened: a run to the local disk never imports it
(``tests/test_storage.py``)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from batchgen import faultpoints
from batchgen.images import ImageData
from batchgen.images.save import image_name
from batchgen.redaction import redact
from batchgen.storage.base import StorageError
from batchgen.storage.journal import StoredObject, UploadJournal
from batchgen.storage.s3put import botocore_put
from batchgen.storage.url import check_url

# variables that hold a storage credential (their values are masked in every message)
CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_API_KEY",
)


def storage_secrets() -> list[str]:
    """The storage credentials in this process's environment (to mask, never to use)."""
    return [v for name in CREDENTIAL_VARS if len(v := os.environ.get(name, "")) >= 4]


def clean(text: object) -> str:
    """A backend's message with the key and every storage credential masked."""
    return redact(str(text), storage_secrets())


def object_path(uri: str) -> str:
    """The object's path inside its filesystem (the URI without its scheme)."""
    # lazy: fsspec is an optional extra (batchgen[s3]); a local run never loads it
    from fsspec.core import strip_protocol

    return str(strip_protocol(uri))


def open_fs(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, root path inside it) for a URL; a missing backend is named."""
    try:
        # lazy: fsspec is an optional extra (batchgen[s3]); a local run never loads it
        import fsspec
    except ImportError as exc:
        msg = "--images-to needs fsspec: pip install 'batchgen[s3]'"
        raise StorageError(msg) from exc
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        msg = f"--images-to {url}: {clean(exc)} (for s3://: pip install 'batchgen[s3]')"
        raise StorageError(msg) from exc
    except ValueError as exc:
        raise StorageError(f"--images-to {url}: {clean(exc)}") from exc
    return fs, str(root).rstrip("/")


class RemoteImages:
    """An :class:`~batchgen.storage.base.ImageStore` on an fsspec filesystem. ``save`` blocks
    on the network: the pool calls it in a worker thread."""

    def __init__(self, url: str, journal: UploadJournal | None = None) -> None:
        self.url = check_url(url)
        self.fs, self.root = open_fs(self.url)
        self.journal = journal
        self._local = "file" in protocols(self.fs)
        if self._local:
            os.makedirs(self.root, exist_ok=True)
        # S3: botocore's PUT from the calling thread (batchgen.storage.s3put says why)
        self._put_object = botocore_put(self.fs) if "s3" in protocols(self.fs) else None

    @property
    def where(self) -> str:
        return self.url

    def inline(self, images: Sequence[ImageData]) -> bool:
        return False

    def save(self, job_id: str, images: list[ImageData], tag: str = "") -> tuple[list[str], int]:
        stored: list[StoredObject] = []
        written: list[str] = []
        try:
            for i, image in enumerate(images):
                name = image_name(job_id, i, image.ext, tag)
                path = f"{self.root}/{name}"
                faultpoints.fail("image:write")
                self._put(path, image.data)
                written.append(path)
                digest = hashlib.sha256(image.data).hexdigest()
                # the row names the object under the URL as given (s3://bucket/prefix/name)
                stored.append(StoredObject(f"{self.url}/{name}", len(image.data), digest))
        except Exception as exc:
            # a set is stored whole or not at all: what went up of it is taken back
            for path in written:
                self._remove_quietly(path)
            if isinstance(exc, StorageError):
                raise
            msg = f"could not store an image at {self.url}: {type(exc).__name__}: {clean(exc)}"
            raise StorageError(msg) from None
        if self.journal is not None:
            self.journal.record(job_id, stored)
        return [o.uri for o in stored], sum(o.size for o in stored)

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()

    def _put(self, path: str, data: bytes) -> None:
        if self._put_object is not None:
            self._put_object(path, data)
            return
        if not self._local:
            self.fs.pipe_file(path, data)
            return
        # a local folder: a temp name, then a rename (a crash leaves no half image)
        folder, name = os.path.split(path)
        tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        Path(tmp).write_bytes(data)
        os.replace(tmp, path)

    def _remove_quietly(self, path: str) -> None:
        try:
            self.fs.rm_file(path)
        except Exception:
            pass


def protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
