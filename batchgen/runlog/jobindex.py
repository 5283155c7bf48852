"""The job file's index (job id, fingerprint, line), stored once as ``state/job-index.parquet``.

Resume compares the job file against the log by (id, fingerprint); parsing and hashing every
line again costs ~6 s per million. ``batchgen run`` streams every job anyway before sending,
so it keeps the index and resume reads it back when the job file (its sha256) and the
defaults are the ones it was built from. Anything else — no index (an older run dir, a crash
before it was written), an unreadable one, another file — is the slow path, silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batchgen import jobs
from batchgen.jobs.inputs import may_have_inputs
from batchgen.runlog.fsio import create_temp, fsync_dir
from batchgen.runlog.table import ints_from_buffers, strings_from_buffers

INDEX_NAME = "job-index.parquet"
SCHEMA = pa.schema([("job_id", pa.string()), ("job_fp", pa.string()), ("line", pa.int64())])
_SHA_KEY = b"batchgen.job_file_sha256"
_DEFAULTS_KEY = b"batchgen.defaults"
# small enough that the Python lists held between flushes stay a few MB on any job file
CHUNK = 16_384
# a job file up to this many jobs is parsed once: the check's jobs go to the pool as they are
# (a few MB); a longer one is read again by the pool, streamed, so memory stays flat
KEEP_JOBS = 20_000


def index_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / INDEX_NAME


def defaults_key(defaults: Mapping[str, Any] | None) -> str:
    """Canonical JSON of the defaults: the same defaults give the same key across runs."""
    return json.dumps(dict(defaults or {}), sort_keys=True, separators=(",", ":"), default=str)


class IndexBuilder:
    """Collects (id, fingerprint, line) in Python lists flushed to Arrow every ``chunk`` jobs,
    so a million jobs cost their Arrow size (~90 MB), not a million tuples.

    ``keep``: :meth:`add_job` also keeps the jobs themselves while there are at most that
    many, none of them an edit, so the session can send the jobs its check parsed instead of
    parsing the file a second time (:meth:`kept`)."""

    __slots__ = ("_chunk", "_chunks", "_fps", "_ids", "_jobs", "_keep", "_lines")

    def __init__(self, chunk: int = CHUNK, *, keep: int = 0) -> None:
        self._chunk = chunk
        self._chunks: list[pa.RecordBatch] = []
        self._ids: list[str] = []
        self._fps: list[str] = []
        self._lines: list[int] = []
        self._keep = keep
        self._jobs: list[jobs.Job] | None = [] if keep > 0 else None

    def add_job(self, job: jobs.Job) -> None:
        """:meth:`add` of the job's (id, fingerprint, line), and the job kept (``keep``)."""
        # (add, written out: this runs for every job of the file at start-up)
        self._ids.append(job.id)
        self._fps.append(job.fingerprint)
        self._lines.append(job.line)
        if len(self._ids) >= self._chunk:
            self._flush()
        kept = self._jobs
        if kept is not None:
            if job.inputs or len(kept) >= self._keep:
                # an edit's inputs are resolved again when read (files may change), and a
                # long file is streamed: nothing kept
                self._jobs = None
            else:
                kept.append(job)

    def kept(self) -> list[jobs.Job] | None:
        """The jobs kept by :meth:`add_job`, in file order, handed over (the builder drops
        them); None when it kept none (no ``keep``, too many jobs, an edit)."""
        kept, self._jobs = self._jobs, None
        return kept

    def add(self, job_id: str, fp: str, line: int) -> None:
        self._ids.append(job_id)
        self._fps.append(fp)
        self._lines.append(line)
        if len(self._ids) >= self._chunk:
            self._flush()

    def _flush(self) -> None:
        if self._ids:
            # from buffers, not pa.array: that would import pandas (see runlog/table.py)
            arrays = [
                strings_from_buffers(self._ids, has_none=False),
                strings_from_buffers(self._fps, has_none=False),
                ints_from_buffers(self._lines, 64, has_none=False),
            ]
            self._chunks.append(pa.RecordBatch.from_arrays(arrays, schema=SCHEMA))
            self._ids, self._fps, self._lines = [], [], []

    def table(self) -> pa.Table:
        """Everything collected, handed over: the builder keeps no reference (its memory
        goes with the caller's table)."""
        self._flush()
        chunks, self._chunks = self._chunks, []
        return pa.Table.from_batches(chunks, schema=SCHEMA)


def build_index(index: Iterable[tuple[str, str, int]]) -> pa.Table:
    builder = IndexBuilder(chunk=65_536)
    add = builder.add
    for job_id, fp, line in index:
        add(job_id, fp, line)
    return builder.table()


def write_index(
    state_dir: Path | str, table: pa.Table, job_sha256: str, defaults: Mapping[str, Any] | None
) -> Path:
    """Write the index atomically (temp, fsync, rename, fsync the directory): a reader sees
    the whole index or none."""

    path = index_path(state_dir)
    meta = {_SHA_KEY: job_sha256.encode(), _DEFAULTS_KEY: defaults_key(defaults).encode()}
    table = table.select(SCHEMA.names)
    if not table.schema.equals(SCHEMA, check_metadata=False):
        table = table.cast(SCHEMA)  # loads pyarrow.compute: not for IndexBuilder's tables
    table = table.replace_schema_metadata(meta)
    tmp = path.with_name(f".{path.name}.tmp")
    # ids and fingerprints are unique: no dictionary. zstd halves the hex (75 → 35 MB for
    # 1M jobs) and still reads back in <0.1 s
    with create_temp(tmp) as f:
        pq.write_table(table, f, use_dictionary=False, compression="zstd")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def read_index(
    state_dir: Path | str, job_sha256: str, defaults: Mapping[str, Any] | None
) -> pa.Table | None:
    """The stored index if it was built from this job file (sha256) with these defaults;
    None when it is missing, unreadable, or from another file or defaults."""

    path = index_path(state_dir)
    try:
        parquet = pq.ParquetFile(path)
        meta = parquet.schema_arrow.metadata or {}
        if meta.get(_SHA_KEY) != job_sha256.encode():
            return None
        if meta.get(_DEFAULTS_KEY) != defaults_key(defaults).encode():
            return None
        table = parquet.read()
    except (OSError, pa.ArrowException, ValueError):
        return None
    if not table.schema.equals(SCHEMA, check_metadata=False):
        return None
    return table.replace_schema_metadata(None)


def load_or_build(
    state_dir: Path | str, job_file: Path | str, job_sha256: str, defaults: Mapping[str, Any]
) -> pa.Table:
    """The index for resume: the stored one when it matches, else scan the job file (the
    slow path) and store the result, so the next resume is fast."""

    # an edit's fingerprint covers its input photos, which change without the job file:
    # such a file is always scanned afresh, and no index of it is kept
    volatile = may_have_inputs(job_file)
    table = None if volatile else read_index(state_dir, job_sha256, defaults)
    if table is not None:
        return table
    table = build_index(jobs.job_index(job_file, defaults))
    if volatile:
        return table
    try:
        write_index(state_dir, table, job_sha256, defaults)
    except OSError:
        pass  # only a speed-up: the next resume scans again
    return table
