"""The stored image measurements: ``RUN_DIR/checks/*.parquet``, beside the log.

Written like the log (``batchgen/runlog/writer.py``): each flush is a new file, written to a
temp name starting with '.', fsynced, renamed, and the directory fsynced, so ``kill -9`` at any
instant leaves only complete files (readers skip the temp names). Losing the last unflushed
measurements costs nothing but a second decode: the report measures what has no stored row.

File names say who wrote them, so writers never collide::
    s<session:05d>-<seq:06d>.parquet        measured while session <session> ran
    r<time_ns>-<pid>-<seq:06d>.parquet      measured by a report
    merged-<time_ns>-<pid>.parquet          a compaction of earlier files

One row per measurement, keyed by the image's logged path and its size in bytes (a rewritten
image has another size: it is measured again; ``sha256`` is kept for whoever needs more). A
path can have several rows (a compaction that crashed before deleting its sources, a report
racing a live run): readers keep the newest per path. Compaction merges every file it sees
into one and only then deletes them.
"""

from __future__ import annotations

import os
import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batchgen.checks.record import HASH_SIZE, THUMB_PX, Measured
from batchgen.runlog.fsio import create_temp, fsync_dir
from batchgen.runlog.table import ints_from_buffers, strings_from_buffers

CHECKS_DIR = "checks"
COMPACT_AT = 32  # files; a report merges them into one past this

SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
        ("error", pa.string()),  # null when the image decodes
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("std", pa.float64()),  # grayscale std-dev on the thumbnail (blank)
        ("laplacian_var", pa.float64()),  # 4-neighbour Laplacian variance (blur)
        ("dhash", pa.binary()),  # hash_size² bits, big-endian (duplicates)
        ("thumb_px", pa.int32()),
        ("hash_size", pa.int32()),
        ("checked_at", pa.float64()),
        ("origin", pa.string()),  # ingest / finish / report
    ]
)
_FIELDS = Measured._fields


def checks_dir(run_dir: Path | str) -> Path:
    return Path(run_dir) / CHECKS_DIR


def visible_files(run_dir: Path | str) -> list[Path]:
    folder = checks_dir(run_dir)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(folder / n for n in names if n.endswith(".parquet") and not n.startswith("."))


def _binary(values: list[bytes | None]) -> pa.Array:
    present = [b"" if v is None else v for v in values]
    offsets = array("i", [0, *accumulate(map(len, present))])
    flags = [v is not None for v in values]
    nulls = len(flags) - sum(flags)
    validity = pa.py_buffer(bytes(_pack(flags))) if nulls else None
    buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(present))]
    return pa.Array.from_buffers(pa.binary(), len(values), buffers, null_count=nulls)


def _pack(flags: list[bool]) -> bytearray:
    out = bytearray((len(flags) + 7) // 8)
    for i, f in enumerate(flags):
        if f:
            out[i >> 3] |= 1 << (i & 7)
    return out


def _floats(values: list[float | None]) -> pa.Array:
    flags = [v is not None for v in values]
    nulls = len(flags) - sum(flags)
    validity = pa.py_buffer(bytes(_pack(flags))) if nulls else None
    data = pa.py_buffer(array("d", [0.0 if v is None else v for v in values]))
    return pa.Array.from_buffers(pa.float64(), len(values), [validity, data], null_count=nulls)


def to_table(measured: Iterable[Measured], origin: str, thumb_px: int, hash_size: int) -> pa.Table:
    """Built from buffers, not ``pa.array`` on lists: that asks pyarrow's pandas shim first,
    which imports pandas into the run (batchgen/runlog/table.py; tests/test_startup.py)."""
    rows = list(measured)
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in _FIELDS]
    data = {k: list(v) for k, v in zip(_FIELDS, cols, strict=True)}
    n = len(rows)
    now = time.time()
    arrays = [
        strings_from_buffers(data["path"]),
        ints_from_buffers(data["nbytes"], 64),
        strings_from_buffers(data["sha256"]),
        strings_from_buffers(data["error"]),
        ints_from_buffers(data["width"], 32),
        ints_from_buffers(data["height"], 32),
        _floats(data["std"]),
        _floats(data["laplacian_var"]),
        _binary(data["dhash"]),
        ints_from_buffers([thumb_px] * n, 32, has_none=False),
        ints_from_buffers([hash_size] * n, 32, has_none=False),
        _floats([now] * n),
        strings_from_buffers([origin] * n, has_none=False),
    ]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _write_atomic(folder: Path, name: str, table: pa.Table) -> Path:
    final = folder / name
    tmp = folder / f".{name}.tmp"
    try:
        with create_temp(tmp) as f:  # exclusive: never through a planted link
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(folder)
    return final


class ChecksWriter:
    """Appends measurements as new part files; not thread-safe (one owner thread)."""

    def __init__(
        self,
        run_dir: Path | str,
        prefix: str,
        origin: str,
        thumb_px: int = THUMB_PX,
        hash_size: int = HASH_SIZE,
    ) -> None:
        self.folder = checks_dir(run_dir)
        self.prefix = prefix
        self.origin = origin
        self.thumb_px = thumb_px
        self.hash_size = hash_size
        self._pending: list[Measured] = []
        self._seq = 0
        self.rows_written = 0
        self.written: list[Path] = []

    @classmethod
    def for_session(cls, run_dir: Path | str, session: int, **kw: int) -> ChecksWriter:
        return cls(run_dir, f"s{session:05d}", "ingest", **kw)

    @classmethod
    def for_report(cls, run_dir: Path | str, **kw: int) -> ChecksWriter:
        return cls(run_dir, f"r{time.time_ns()}-{os.getpid()}", "report", **kw)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, measured: Iterable[Measured]) -> None:
        self._pending.extend(measured)

    def flush(self, origin: str | None = None) -> Path | None:
        if not self._pending:
            return None
        rows, self._pending = self._pending, []
        table = to_table(rows, origin or self.origin, self.thumb_px, self.hash_size)
        self.folder.mkdir(parents=True, exist_ok=True)
        while (self.folder / f"{self.prefix}-{self._seq:06d}.parquet").exists():
            self._seq += 1  # a session number is never reused, but be safe
        try:
            path = _write_atomic(self.folder, f"{self.prefix}-{self._seq:06d}.parquet", table)
        except BaseException:
            self._pending[:0] = rows  # kept for the next flush
            raise
        self._seq += 1
        self.rows_written += len(rows)
        self.written.append(path)
        return path


def _read_one(path: Path, columns: list[str] | None) -> pa.Table | None:
    try:
        return pq.ParquetFile(path).read(columns=columns)  # not read_table: no pyarrow.dataset
    except FileNotFoundError:  # deleted by a compaction after we listed it: its rows moved
        return None


def read_store(
    run_dir: Path | str,
    thumb_px: int = THUMB_PX,
    hash_size: int = HASH_SIZE,
    columns: list[str] | None = None,
) -> pa.Table:
    """Every stored measurement made with these parameters, the newest per path."""
    for _ in range(5):  # a listing raced by a compaction: list again
        listed = visible_files(run_dir)
        tables = [
            _read_one(p, columns and [*columns, "thumb_px", "hash_size", "checked_at"])
            for p in listed
        ]
        if all(t is not None for t in tables):
            break
    tables = [t for t in tables if t is not None and t.num_rows]
    if not tables:
        return (
            SCHEMA.empty_table()
            if columns is None
            else SCHEMA.empty_table().select([*columns, "thumb_px", "hash_size", "checked_at"])
        )
    table = pa.concat_tables(tables, promote_options="default")
    # lazy: loads pandas, pyarrow.compute; this module is imported without them
    import pyarrow.compute as pc

    keep = pc.and_(pc.equal(table["thumb_px"], thumb_px), pc.equal(table["hash_size"], hash_size))
    table = table.filter(keep)
    if table.num_rows == 0:
        return table
    # newest per path: sort by path then checked_at descending, keep each path's first row
    table = table.sort_by([("path", "ascending"), ("checked_at", "descending")])
    paths = table["path"].combine_chunks()
    if len(paths) > 1:
        first = pc.not_equal(paths.slice(1), paths.slice(0, len(paths) - 1))
        mask = pa.concat_arrays([pa.array([True]), first.fill_null(True)])
        table = table.filter(mask)
    return table


def compact(run_dir: Path | str, at: int = COMPACT_AT) -> Path | None:
    """Merge every visible file into one once there are ``at`` or more: write the merge
    (temp, fsync, rename, fsync dir), then delete the sources. A crash in between leaves rows
    twice, which readers already fold (newest per path)."""
    listed = visible_files(run_dir)
    if len(listed) < at:
        return None
    tables = [t for t in (_read_one(p, None) for p in listed) if t is not None]
    merged = pa.concat_tables(tables, promote_options="default") if tables else None
    if merged is None:
        return None
    folder = checks_dir(run_dir)
    target = _write_atomic(folder, f"merged-{time.time_ns()}-{os.getpid()}.parquet", merged)
    for p in listed:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
    fsync_dir(folder)
    return target


@dataclass(frozen=True, slots=True)
class StoredKeys:
    """path → stored size, for skipping an image measured before (resume, adoption). Plain
    Python over the columns: the run process never loads pyarrow.compute (or pandas)."""

    sizes: dict[str, int]

    @classmethod
    def load(
        cls, run_dir: Path | str, thumb_px: int = THUMB_PX, hash_size: int = HASH_SIZE
    ) -> StoredKeys:
        sizes: dict[str, int] = {}
        for path in visible_files(run_dir):
            t = _read_one(path, ["path", "bytes", "thumb_px", "hash_size"])
            if t is None:
                continue
            cols = [t[c].to_pylist() for c in ("path", "bytes", "thumb_px", "hash_size")]
            for p, size, tp, hs in zip(*cols, strict=True):
                if tp == thumb_px and hs == hash_size:
                    sizes[p] = size
        return cls(sizes)
