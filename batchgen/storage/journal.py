"""The upload journal: ``state/uploads-<session>.jsonl``, one line per job whose whole set of
images reached the object store, written right after its last object and before its log row.

It is what a resume checks objects against (``batchgen.storage.adopt``): a crash between the
upload and the log's next flush leaves objects the log does not name; the journal names them,
with the size and sha256 each had when it was sent, so an object is adopted only when it is
the one that was paid for. One unbuffered ``write`` per line on an ``O_APPEND`` descriptor
(no fsync: the page cache survives kill -9), as the sent journal (``runlog.journal``)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PREFIX = "uploads-"


@dataclass(frozen=True, slots=True)
class StoredObject:
    uri: str
    size: int
    sha256: str


def journal_file(state_dir: Path, session: int) -> Path:
    return state_dir / f"{PREFIX}{session:05d}.jsonl"


class UploadJournal:
    """Appends ``{"job": id, "objects": [[uri, size, sha256], ...]}`` lines; thread-safe
    (remote saves run in worker threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    def record(self, job_id: str, objects: list[StoredObject]) -> None:
        line = json.dumps(
            {"job": job_id, "objects": [[o.uri, o.size, o.sha256] for o in objects]},
            separators=(",", ":"),
        )
        data = (line + "\n").encode()
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
                self._fd = os.open(self.path, flags, 0o644)
            os.write(self._fd, data)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def uploaded(state_dir: Path) -> dict[str, list[StoredObject]]:
    """job id → the objects of its last recorded upload, over every session's journal. A torn
    last line (the process died mid-write) is skipped: that job's set counts as not stored."""
    out: dict[str, list[StoredObject]] = {}
    for path in sorted(_journals(state_dir), key=_session_of):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                doc = json.loads(line)
                objects = [StoredObject(str(u), int(s), str(h)) for u, s, h in doc["objects"]]
                out[str(doc["job"])] = objects
            except (ValueError, KeyError, TypeError):
                continue
    return out


def _journals(state_dir: Path) -> Iterator[Path]:
    try:
        yield from (p for p in state_dir.iterdir() if p.name.startswith(PREFIX))
    except FileNotFoundError:
        return


def _session_of(path: Path) -> int:
    digits = path.name.removeprefix(PREFIX).removesuffix(".jsonl")
    return int(digits) if digits.isdigit() else -1
