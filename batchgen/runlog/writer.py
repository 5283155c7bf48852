"""RunLogWriter: buffered rows → fsynced Parquet part files every ~1 s, compaction at close.

Callers (the pool, on its event loop) only ever append a dict to a list under a lock, after
``row.check_row`` has checked it against the schema (a wrong type raises there, at the source). A
background thread turns the list into a part file (write to ``.part-….parquet.tmp``, fsync,
rename, fsync the directory), so ``kill -9`` at any instant leaves every renamed part readable
and loses at most the last ``flush_interval`` of rows. See ``files.py`` for the layout and the
crash-safe compaction.

In-flight jobs (for "possibly billed twice" after a crash): give the writer the live set of
job ids the pool has sent and not yet finished (``set_inflight(the_set)``). At each flush the
writer copies it (``frozenset(s)`` is one C call under the GIL, so no lock is needed) and
rewrites ``state/inflight-<session>.json``. The pool must add an id before sending and
append the job's final row BEFORE discarding the id; the writer copies the set before taking
the rows, so a job is always either in the inflight file or has its final row in a part (the
file also lists every job id of the part being written, since that part is renamed after the
inflight file). Jobs started and lost within the last flush interval before a crash are not
listed: the window is ``flush_interval``.

Cost: ``append`` is a list append after the row check. The flush builds columns with list
comprehensions, so it holds the GIL for a time that grows with the part's rows, the only time
the event loop can be delayed by the writer; Parquet encoding and fsync release the GIL
(figures in docs/bench.md).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from batchgen import faultpoints
from batchgen.clock import SYSTEM_CLOCK, Clock
from batchgen.errors import BatchgenError
from batchgen.runlog import files
from batchgen.runlog.fsio import atomic_write_bytes, create_temp, fsync_dir
from batchgen.runlog.row import LOG_ROW
from batchgen.runlog.table import rows_to_table

log = logging.getLogger(__name__)

InflightSource = Collection[str] | Callable[[], Iterable[str]]
_MAX_PROBLEMS = 100


class RunLogError(BatchgenError, OSError):
    """Writing the log failed (disk full, permissions); rows stay buffered and are retried.
    ``errno`` is the cause's; ``unwritten`` is how many rows were still only in memory."""

    def __init__(self, message: str, cause: BaseException, unwritten: int) -> None:
        super().__init__(getattr(cause, "errno", None), message)
        self.message = message
        self.unwritten = unwritten

    def __str__(self) -> str:
        return self.message


def inflight_path(state_dir: Path, session: int) -> Path:
    return Path(state_dir) / f"inflight-{session:05d}.json"


class RunLogWriter:
    """The sink of a real run: ``append(row)`` from any thread, ``close()`` at the end.

    ``compact_every``: once this many part files of the session pile up, the writer merges them
    into one compact file, so a long run's log stays a few files (``None`` turns it off).
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        run_id: str,
        session: int,
        flush_interval: float = 1.0,
        flush_rows: int = 20_000,
        clock: Clock = SYSTEM_CLOCK,
        state_dir: Path | None = None,
        compact_every: int | None = 256,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.state_dir = Path(state_dir) if state_dir else self.log_dir.parent / "state"
        self.run_id = run_id
        self.session = session
        self._interval = flush_interval
        self._flush_rows = flush_rows
        self._clock = clock
        self._compact_every = compact_every
        self.log_dir.mkdir(parents=True, exist_ok=True)

        self._lock = threading.Lock()  # guards _rows and _closed only: held for an append
        self._rows: list[Mapping[str, Any]] = []
        self._closed = False
        self._io_lock = threading.Lock()  # one flush or compaction at a time
        self._wake = threading.Event()
        self._stop = False
        self._inflight: InflightSource | None = None
        self._last_inflight: frozenset[str] | None = None
        self.last_error: BaseException | None = None  # of the last failed flush

        # this session's own visible files, in order; a resumed session number is never reused
        # by RunDir, but continue after any existing file to be safe
        mine = [f for f in files.visible_files(self.log_dir) if f.session == session]
        self._files: list[files.LogFile] = mine
        self._seq = max((f.seq for f in mine), default=-1) + 1

        self.rows_written = 0
        self.parts_written = 0
        self.last_flush_s = 0.0
        self.problems: list[str] = []
        self._thread = threading.Thread(
            target=self._run, name=f"runlog-writer-{session}", daemon=True
        )
        self._thread.start()

    # ---- the hot path -------------------------------------------------------------------
    def append(self, row: Mapping[str, Any]) -> None:
        """Buffer one row (a ``row.Row``). Raises TypeError/ValueError naming the column when
        a value does not fit the schema, or a column is unknown or missing."""
        LOG_ROW.check(row)  # (row.check_row)
        with self._lock:
            if self._closed:
                msg = (
                    f"RunLogWriter for {self.log_dir} is closed: a row for job "
                    f"{row.get('job_id')!r} came after close(); close the writer after the pool"
                )
                raise RuntimeError(msg)
            self._rows.append(row)
            n = len(self._rows)
        if n >= self._flush_rows:
            self._wake.set()

    def set_inflight(self, source: InflightSource | None) -> None:
        """The live set of in-flight job ids (or a callable returning them), read at each flush."""
        self._inflight = source

    # ---- flushing -----------------------------------------------------------------------
    def flush(self) -> None:
        """Write every buffered row to a part file now (blocking; for shutdown and tests)."""
        self._flush_once()

    def close(self, compact: bool = True, *, retry_for: float = 0.0) -> Path | None:
        """Final flush, then (``compact``) merge this session's files into one compact file.

        A failing final flush (disk full) is retried for ``retry_for`` seconds, then raises
        ``RunLogError`` (the rows it could not write are counted in ``unwritten``). A failing
        compaction is not an error: the part files stay, complete, and the next resume
        compacts them. Returns the compact file's path, if one was written. Idempotent.
        """
        with self._lock:
            if self._closed:
                return None
            self._closed = True
        self._stop = True
        self._wake.set()
        self._thread.join()
        deadline = time.monotonic() + retry_for
        while True:
            try:
                self._flush_once()
                break
            except RunLogError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                time.sleep(min(0.2, left))  # space may be freed meanwhile
        if not compact:
            return None
        with self._io_lock:
            if len(self._files) <= 1 and all(f.kind == "compact" for f in self._files):
                return None
            try:
                return self._compact_mine()
            except OSError as e:
                log.warning("run log: compaction skipped (%s); the part files are kept", e)
                return None

    @property
    def unwritten(self) -> int:
        """Rows appended and not yet in a part file."""
        with self._lock:
            return len(self._rows)

    def __enter__(self) -> RunLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop:
                return
            try:
                self._flush_once()
            except Exception as e:
                log.error("run log flush failed (will retry): %s", e)

    def _flush_once(self) -> None:
        with self._io_lock:
            # inflight before rows: see the module docstring for why this order matters
            inflight = self._snapshot_inflight()
            with self._lock:
                rows, self._rows = self._rows, []
            start = time.perf_counter()
            renamed = False
            try:
                if rows:
                    self._write_part(rows, inflight)
                    renamed = True
                    faultpoints.hit("flush:after_rename")
                    fsync_dir(self.log_dir)
                elif inflight is not None and inflight != self._last_inflight:
                    self._write_inflight(inflight)
            except Exception as e:
                if rows and not renamed:
                    with self._lock:
                        self._rows[:0] = rows  # retried at the next flush, order kept
                self.last_error = e
                msg = (
                    f"writing the run log in {self.log_dir} failed: {e}. Rows are kept in "
                    "memory and retried every flush; free disk space or fix permissions"
                )
                raise RunLogError(msg, e, len(self._rows)) from e
            self.last_error = None
            self.last_flush_s = time.perf_counter() - start
            if (
                renamed
                and self._compact_every
                and self._parts_since_compact() >= (self._compact_every)
            ):
                try:
                    self._compact_parts()
                except OSError as e:  # the parts stay complete; compacted later
                    log.warning("run log: compaction skipped (%s); the part files are kept", e)

    def _snapshot_inflight(self) -> frozenset[str] | None:
        source = self._inflight
        if source is None:
            return None
        for _ in range(10):
            try:
                return frozenset(source() if callable(source) else source)
            except RuntimeError:  # a non-set container changed size while copied: try again
                continue
        msg = "the in-flight source kept changing while copied; pass a set (copied atomically)"
        raise RuntimeError(msg)

    def _write_part(self, rows: list[Mapping[str, Any]], inflight: frozenset[str] | None) -> None:
        table, problems = rows_to_table(rows, run_id=self.run_id, session=self.session)
        self._note(problems)
        seq = self._seq
        final = self.log_dir / files.part_name(self.session, seq)
        tmp = self.log_dir / f".{final.name}.tmp"
        try:
            with create_temp(tmp) as f:
                faultpoints.fail("log:write")
                pq.write_table(table, f)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk gets its space back
            raise
        if inflight is not None:
            # the part's own jobs too: if we die before its rename they were sent but unlogged
            batch_ids = {r["job_id"] for r in rows}  # check_row: every row has one
            self._write_inflight(inflight | batch_ids)
        faultpoints.hit("flush:before_rename")
        os.replace(tmp, final)
        self._seq += 1
        self._files.append(files.LogFile(self.session, seq, "part", final))
        self.rows_written += len(rows)
        self.parts_written += 1

    def _write_inflight(self, ids: frozenset[str]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        doc = {"session": self.session, "written_at": self._clock.wall(), "job_ids": sorted(ids)}
        atomic_write_bytes(
            inflight_path(self.state_dir, self.session),
            json.dumps(doc).encode(),
            fault_point="inflight:before_rename",
        )
        self._last_inflight = ids

    def _note(self, problems: list[str]) -> None:
        for p in problems:
            log.warning("run log: %s", p)
        room = _MAX_PROBLEMS - len(self.problems)
        self.problems.extend(problems[: max(0, room)])

    # ---- compaction ---------------------------------------------------------------------
    def _parts_since_compact(self) -> int:
        return sum(1 for f in self._files if f.kind == "part")

    def _compact_parts(self) -> None:
        parts = [f for f in self._files if f.kind == "part"]
        target = files.compact(self.log_dir, self.session, parts)
        keep = [f for f in self._files if f.kind != "part"]
        self._files = [*keep, files.LogFile(self.session, parts[-1].seq, "compact", target)]

    def _compact_mine(self) -> Path:
        target = files.compact(self.log_dir, self.session, self._files)
        self._files = [files.LogFile(self.session, self._files[-1].seq, "compact", target)]
        return target
