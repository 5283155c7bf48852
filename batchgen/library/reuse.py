"""Taking a stored answer instead of a request (``run --reuse [LIBRARY]``,
``run --from-pilot PILOT_DIR``): inside a session, each job whose fingerprint a source
holds gets that answer's images (hard-linked or copied into the run) and one ``ok`` row
with ``cost_source = "reused"``, ``cost_usd = 0`` and ``reused_from`` naming the source
run; only the other jobs go on to the pool. The sources are recorded in run.json
(``settings.reuse``), so a resume reuses the same way.

    settings.reuse = {"sources": [{"kind": "library", "path": "..."},
                                  {"kind": "run", "path": "runs/pilot-x"}],
                      "bar": 7.0 or null}
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.images.save import image_name
from batchgen.library.entries import run_entries
from batchgen.library.index import Library, link_or_copy
from batchgen.runlog.row import Row

if TYPE_CHECKING:
    from batchgen.jobs.model import Job

REUSED = "reused"


@dataclass(frozen=True, slots=True)
class Found:
    run_id: str
    run_dir: str
    images: tuple[Path, ...]


class Reuser:
    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.bar: float | None = spec.get("bar")
        self.libraries: list[Library] = []
        self.runs: dict[str, Found] = {}
        for source in spec.get("sources") or []:
            path = str(source.get("path"))
            if source.get("kind") == "library":
                self.libraries.append(Library(path))
            elif source.get("kind") == "run" and Path(path).is_dir():
                for e in run_entries(path):
                    if e.fingerprint in self.runs:
                        continue
                    if self.bar is not None and (e.score is None or e.score < self.bar):
                        continue
                    self.runs[e.fingerprint] = Found(e.run_id, e.run_dir, e.images)

    def find(self, job: Job) -> Found | None:
        hit = self.runs.get(job.fingerprint)
        if hit is not None and all(p.is_file() for p in hit.images):
            return hit
        for lib in self.libraries:
            try:
                stored = lib.lookup(job.fingerprint, self.bar)
            except (sqlite3.Error, OSError):
                continue  # checked before the run; damaged since: send the request
            if stored is not None:
                return Found(stored.run_id, stored.run_dir, stored.images)
        return None


def reuse_filter(
    jobs: Iterable[Job],
    spec: Mapping[str, Any],
    append: Callable[[Row], None],
    *,
    run_id: str,
    session: int,
    images_dir: Path,
    on_reused: Callable[[Job, Found], None] | None = None,
) -> Iterator[Job]:
    """The jobs no source holds; for each one held, its images into ``images_dir`` and its
    row through ``append`` (the session's log writer)."""
    reuser = Reuser(spec)
    for job in jobs:
        found = reuser.find(job)
        if found is None:
            yield job
            continue
        try:
            paths, nbytes = _materialise(found, job.id, images_dir)
        except OSError:
            yield job  # the stored file vanished or cannot be linked: send the request
            continue
        append(reused_row(job, found, paths, nbytes, run_id=run_id, session=session))
        if on_reused is not None:
            on_reused(job, found)


def _materialise(found: Found, job_id: str, images_dir: Path) -> tuple[list[str], int]:
    paths, total = [], 0
    made: list[Path] = []
    try:
        for i, src in enumerate(found.images):
            name = image_name(job_id, i, src.suffix.lstrip(".").lower() or "png", "")
            dest = images_dir / name
            link_or_copy(src, dest)
            made.append(dest)
            paths.append(f"images/{name}")
            total += os.path.getsize(dest)
    except OSError:
        for p in made:
            with contextlib.suppress(OSError):
                p.unlink()
        raise
    return paths, total


def reused_row(
    job: Job, found: Found, paths: list[str], nbytes: int, *, run_id: str, session: int
) -> Row:
    now = time.time()
    fields = job.log_fields()
    return {
        "run_id": run_id,
        "session": session,
        "job_id": job.id,
        "job_line": job.line,
        "fingerprint": job.fingerprint,
        "attempt": 1,
        "status": "ok",
        "final": True,
        "provider": REUSED,
        "model": job.body.get("model"),
        "prompt": job.body.get("prompt"),
        "size": job.body.get("size"),
        "quality": job.body.get("quality"),
        "n": job.n,
        "params": job.params_json(),
        "queued_at": now,
        "started_at": now,
        "finished_at": now,
        "latency_s": None,
        "image_paths": paths,
        "image_count": len(paths),
        "image_bytes": nbytes,
        "cost_usd": 0.0,
        "cost_source": REUSED,
        "reused_from": found.run_dir or found.run_id,
        "input_hashes": fields["input_hashes"],
        "vars": fields["vars"],
    }
