"""Never pay twice for an image that reached the object store: before a resume sends anything,
the objects the upload journal names for jobs without an ok row are checked, and a job whose
every object exists with the size and sha256 recorded when it was sent is adopted (logged ok,
not sent again). A missing, short or changed object is not adopted: that job runs again."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.storage.journal import StoredObject, uploaded
from batchgen.storage.remote import clean, object_path, open_fs


@dataclass(frozen=True, slots=True)
class StoredSet:
    job_id: str
    objects: tuple[StoredObject, ...]
    adoptable: bool
    reason: str  # why not ("" when adoptable)

    @property
    def image_bytes(self) -> int:
        return sum(o.size for o in self.objects)


def uploaded_job_ids(state_dir: Path) -> set[str]:
    return set(uploaded(state_dir))


def find_stored(state_dir: Path, wanted: Mapping[str, int]) -> list[StoredSet]:
    """For each job in ``wanted`` (id → n) the journal names: can its objects be adopted?"""
    out = []
    filesystems: dict[str, tuple[Any, str]] = {}
    for job_id, objects in sorted(uploaded(state_dir).items()):
        if job_id not in wanted:
            continue
        if len(objects) != wanted[job_id]:
            reason = f"{len(objects)} of {wanted[job_id]} images stored"
        else:
            reason = next((r for o in objects if (r := _check(o, filesystems))), "")
        out.append(StoredSet(job_id, tuple(objects), not reason, reason))
    return out


def _check(obj: StoredObject, filesystems: dict[str, tuple[Any, str]]) -> str:
    """'' when the object is there with the recorded size and sha256, else what is wrong."""
    scheme = obj.uri.split("://", 1)[0]
    try:
        if scheme not in filesystems:
            filesystems[scheme] = open_fs(obj.uri)
        fs, _ = filesystems[scheme]
        path = object_path(obj.uri)
        size = int(fs.size(path))
        if size != obj.size:
            return f"{obj.uri}: {size} bytes, {obj.size} were stored"
        if hashlib.sha256(fs.cat_file(path)).hexdigest() != obj.sha256:
            return f"{obj.uri}: its content changed since it was stored"
    except FileNotFoundError:
        return f"{obj.uri}: not found"
    except Exception as exc:
        return f"{obj.uri}: {type(exc).__name__}: {clean(exc)}"
    return ""


def adopted_ids(stored: Collection[StoredSet]) -> list[str]:
    return [s.job_id for s in stored if s.adoptable]
