"""What was submitted to the Batch API, kept in ``RUN_DIR/state/batches.json``.

Each *part* is one input file and one batch. Its record is written (atomically: temp, fsync,
rename, fsync of the directory) at every step, and each step is recorded before the next
starts, so a crash anywhere leaves enough to go on without sending a job twice:
    1. the part's job ids (``state/batch/part-NNNNN.ids``) and its input file are on disk
    2. intent recorded (part number, file name, job count)   → resume looks for the file
    3. uploaded: ``file_id`` recorded                        → resume looks for the batch
    4. created: ``batch_id`` recorded                        → followed, then collected
    5. collected: every output and error line logged        → the part is closed

A crash between an upload (or a batch creation) and the recording of its id is settled by
listing the provider's files (by the part's unique file name) and batches (by the metadata
``{"batchgen_run": run_id, "part": "K"}``): what exists is adopted, never created again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from batchgen.runlog.fsio import atomic_write_bytes, fsync_dir

STATE_FILE = "batches.json"
PARTS_DIR = "batch"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
VERSION = 1


@dataclass(slots=True)
class Part:
    part: int
    jobs: int
    bytes: int
    session: int
    filename: str  # unique per run and part: how an upload is found again after a crash
    reserved_usd: float = 0.0  # the worst case held (--max-cost, monthly) when submitted
    created_local: float = field(default_factory=time.time)
    file_id: str | None = None
    batch_id: str | None = None
    status: str | None = None  # the provider's last reported status
    counts: dict[str, int] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    cancel_requested: bool = False
    collected: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def open(self) -> bool:
        """Not yet collected: its jobs are with the provider (or about to be)."""
        return not self.collected

    def label(self) -> str:
        return f"part {self.part} ({self.batch_id or 'not created'})"


class BatchState:
    """The run's parts; ``save()`` after every change (cheap: a few KB)."""

    def __init__(self, state_dir: Path, run_id: str) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / STATE_FILE
        self.parts_dir = self.state_dir / PARTS_DIR
        self.run_id = run_id
        self.parts: list[Part] = []
        if self.path.exists():
            doc = json.loads(self.path.read_text())
            self.parts = [Part(**p) for p in doc.get("parts", [])]

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        doc = {"version": VERSION, "run_id": self.run_id, "parts": [asdict(p) for p in self.parts]}
        atomic_write_bytes(self.path, json.dumps(doc, indent=1).encode())

    def next_part(self) -> int:
        return max((p.part for p in self.parts), default=0) + 1

    def filename(self, part: int) -> str:
        return f"batchgen-{self.run_id}-part-{part:05d}.jsonl"

    def ids_path(self, part: int) -> Path:
        return self.parts_dir / f"part-{part:05d}.ids"

    def input_path(self, part: int) -> Path:
        return self.parts_dir / f"part-{part:05d}.jsonl"

    def metadata(self, part: int) -> dict[str, str]:
        return {"batchgen_run": self.run_id, "part": str(part)}

    def hold_owner(self, part: int) -> str:
        """Whose holds in the spend ledger the part's worst case is (batchgen.money.ledger)."""
        return f"batch {self.run_id} part {part}"

    def open_parts(self) -> list[Part]:
        return [p for p in self.parts if p.open]

    def job_ids(self, part: Part | int) -> list[str]:
        number = part.part if isinstance(part, Part) else part
        path = self.ids_path(number)
        return path.read_text(encoding="utf-8").split() if path.exists() else []

    def ids_in(self, parts: Iterable[Part]) -> set[str]:
        out: set[str] = set()
        for p in parts:
            out.update(self.job_ids(p))
        return out

    def write_part_files(self, part: int, ids: list[str], lines: Iterator[bytes]) -> int:
        """The part's ids and its input JSONL, fsynced; returns the input's size in bytes."""
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        size = 0
        target = self.input_path(part)
        with open(target, "wb") as f:
            for line in lines:
                f.write(line)
                size += len(line)
            f.flush()
            os.fsync(f.fileno())
        atomic_write_bytes(self.ids_path(part), ("\n".join(ids) + "\n").encode())
        fsync_dir(self.parts_dir)
        return size

    def record(self, part: Part) -> None:
        """Add ``part`` (first call) or save its change."""
        if part not in self.parts:
            self.parts.append(part)
        self.save()

    def drop_input(self, part: Part) -> None:
        """The batch exists at the provider: the local copy of its input is no longer needed."""
        self.input_path(part.part).unlink(missing_ok=True)

    def summary(self) -> dict[str, Any]:
        by: dict[str, int] = {}
        for p in self.parts:
            key = (
                "collected"
                if p.collected
                else (p.status or ("uploaded" if p.file_id else "intent"))
            )
            by[key] = by.get(key, 0) + 1
        return {"parts": len(self.parts), "by_status": by}
