"""``--metadata sidecar`` while the session runs: each image's ``NAME.json`` is written when its
row goes to the log, from the row in hand, instead of from the log read back after the last
answer. The session's end then only counts the ok images the log holds for the session: when
every one of them had its sidecar written here, nothing is left to do; otherwise (rows that
came another way — images adopted by a resume, answers reused from a library — or a sidecar
that could not be written) the session's records are all written again from the log
(batchgen.metadata.apply), as before.

A sidecar is written straight to its name, before its row is appended (no temp + rename). A
kill -9 in the middle of that write leaves a torn sidecar, but only beside an image whose row
never reached the log: resume adopts that image, logs it in its own session, and that
session's end rewrites the sidecar from the log (tests/test_metadata.py). ``--metadata embed``
rewrites the images themselves and stays at the session's end."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from batchgen import faultpoints
from batchgen.metadata.apply import Tally, apply, record_of, sidecar_bytes
from batchgen.runlog.files import visible_files
from batchgen.runlog.schema import STATUS_OK

# a new regular file (or one torn by an earlier kill, truncated), never through a symlink
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)


@dataclass(slots=True)
class Written:
    """A set of image paths kept as its size and an order-free checksum (the sum of the
    paths' hashes): two sets that compare equal are the same set but for a 2**-64 chance,
    and memory does not grow with the run."""

    count: int = 0
    checksum: int = 0

    def add(self, path: str) -> None:
        self.count += 1
        self.checksum = (self.checksum + hash(path)) & _MASK


_MASK = (1 << 64) - 1


class LiveSidecars:
    """The run log's sink, with each ok row's sidecars written first (on the event loop: a
    writer thread costs more in passing the interpreter lock than it saves, docs/bench.md)."""

    def __init__(self, inner: Any, run_dir: str) -> None:
        self.inner = inner
        self._folder = run_dir
        self.written = Written()  # a failed one is left to the end's pass

    def append(self, row: Any) -> None:
        if row.get("status") == STATUS_OK:
            paths = row.get("image_paths")
            if paths:
                self._write(row, paths)
        faultpoints.hit("sidecar:before_row")
        self.inner.append(row)

    def _write(self, row: Any, paths: list[str]) -> None:
        count = len(paths)
        for i, rel in enumerate(paths):
            data = sidecar_bytes(record_of(row, i, count))
            try:
                fd = os.open(f"{self._folder}/{rel}.json", _CREATE, 0o644)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
            except OSError:
                continue  # the end's pass writes it again, and says why if it fails again
            self.written.add(rel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class SessionMetadata:
    """The ``--metadata`` hook of a CLI session: ``row_sink`` while it runs, then the call at
    its end (the notify observer runs both)."""

    def __init__(self, mode: str, say: Callable[[str], None], warn: Callable[[str], None]) -> None:
        self.mode = mode
        self._say = say
        self._warn = warn
        self._live: dict[int, LiveSidecars] = {}  # session -> its sink

    def row_sink(self, inner: Any, run_dir: Path | str, session: int) -> Any:
        if self.mode != "sidecar":
            return inner
        live = LiveSidecars(inner, os.fspath(run_dir))
        self._live[session] = live
        return live

    def __call__(self, rundir: Any, result: Any) -> None:
        last = rundir.manifest().last_session
        # a --ray run's driver session logs nothing: its shards' sessions hold the images
        session = last.session if last and not last.shards else None
        live = self._live.pop(session, None) if session is not None else None
        if (
            live is not None
            and session is not None
            and live.written == logged_images(rundir.path, session)
        ):
            tally = Tally(sidecars=live.written.count)
        else:
            tally = apply(rundir.path, self.mode, session)
        if tally.sidecars or tally.embedded:
            self._say(tally.describe(self.mode))
        for error in tally.errors[:3]:
            self._warn(f"metadata: {error}")


def logged_images(run_dir: Path | str, session: int) -> Written | None:
    """The images the ok rows of ``session`` name in the log (three columns read, no row
    built); None when a part cannot be read (the full pass decides what it can write)."""
    seen = Written()
    log_dir = Path(run_dir) / "log"
    if not log_dir.is_dir():
        return seen
    columns = ["status", "session", "image_paths"]
    for log_file in visible_files(log_dir):
        try:
            parquet = pq.ParquetFile(log_file.path)
        except (OSError, ValueError):
            return None
        if not set(columns) <= set(parquet.schema_arrow.names):
            continue
        for batch in parquet.iter_batches(batch_size=65536, columns=columns):
            status, sessions, paths = (batch.column(i).to_pylist() for i in range(3))
            for s, k, names in zip(status, sessions, paths, strict=True):
                if s == STATUS_OK and k == session:
                    for name in names or ():
                        seen.add(name)
    return seen
