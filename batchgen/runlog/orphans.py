"""Orphan adoption: images saved for a job whose ok row never reached the log (a crash
between the image write and the next flush). A complete, decodable set is adopted (the
caller logs an ok row with ``cost_source="recovered"``); a partial set is only reported, and
the job runs again."""

from __future__ import annotations

import os
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from PIL import Image


@dataclass(frozen=True, slots=True)
class Orphan:
    job_id: str
    paths: tuple[Path, ...]  # by image index
    wanted: int  # images the job asks for (n)
    adoptable: bool
    reason: str  # why not adoptable ("" when adoptable)
    image_bytes: int


def _decodes(path: Path) -> str:
    """'' if Pillow can open and verify the file, else why not."""
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as e:
        return f"{path.name} does not decode as an image ({type(e).__name__}: {e})"
    return ""


def _image_files(images_dir: Path) -> Iterator[tuple[str, int, str]]:
    """(job id, image index, path) of every ``<job_id>_<i>.<ext>`` in the folder."""
    with os.scandir(images_dir) as it:
        for entry in it:
            name = entry.name
            if name.startswith("."):  # temp files of atomic image writes
                continue
            stem, dot, _ext = name.rpartition(".")
            job_id, sep, index = stem.rpartition("_")
            if dot and sep and index.isdigit():
                yield job_id, int(index), entry.path


def image_job_ids(images_dir: Path | str) -> set[str]:
    """Ids of the jobs that have at least one image file on disk."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        return set()
    return {job_id for job_id, _, _ in _image_files(images_dir)}


def _scan(
    images_dir: Path, done_ids: Container[str], wanted: Mapping[str, int]
) -> dict[str, dict[int, Path]]:
    groups: dict[str, dict[int, Path]] = {}
    for job_id, index, path in _image_files(images_dir):
        if job_id in done_ids or job_id not in wanted:
            continue
        groups.setdefault(job_id, {}).setdefault(index, Path(path))
    return groups


def find_orphans(
    images_dir: Path | str, done_ids: Container[str], wanted: Mapping[str, int]
) -> list[Orphan]:
    """Images named ``<job_id>_<i>.<ext>`` for jobs in ``wanted`` (id → n) that are not in
    ``done_ids``. Adoptable when every index 0..n-1 exists and decodes (Pillow ``verify``)."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        return []
    out = []
    for job_id, found in sorted(_scan(images_dir, done_ids, wanted).items()):
        n = wanted[job_id]
        paths = tuple(found[i] for i in sorted(found))
        size = sum(p.stat().st_size for p in paths)
        missing = [i for i in range(n) if i not in found]
        if missing:
            reason = f"partial set: {len(found)} of {n} images, missing index {missing}"
        else:
            reason = next((r for r in map(_decodes, paths) if r), "")
        out.append(Orphan(job_id, paths, n, not reason, reason, size))
    return out
