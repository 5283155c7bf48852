"""The log directory's file layout, compaction and crash recovery.

Layout of ``RUN_DIR/log``::
    part-<session:05d>-<seq:06d>.parquet      one flush of the writer (~1 s of rows)
    compact-<session:05d>-<seq:06d>.parquet   zstd merge of a session's earlier files
    .<name>.tmp                               being written; never read, deleted by recovery

``seq`` counts a session's parts; a compact file takes the seq of the last file it merges, so
sorting by (session, seq) is the order rows were written (a compact file sorts before a part
of the same seq, which it replaces).

Compaction is crash-safe without a second metadata file: the compact file's Parquet key-value
metadata ``batchgen.replaces`` lists the file names it replaces. It is written to a temp name,
fsynced, renamed, the directory fsynced, and only then are the sources deleted. Batchgen's
readers (``visible_files``) drop every file named in the ``replaces`` list of an existing
compact file, so a crash between the rename and the last delete loses nothing and duplicates
nothing; recovery (``recover``) deletes such leftovers and stale temp files.

Plain DuckDB / pandas globbing ``log/*.parquet`` do not know about ``replaces``: they can see a
session's rows twice in the milliseconds between a compact file's rename and the deletion of
its sources (or until recovery runs, after a crash in exactly that window).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batchgen import faultpoints
from batchgen.runlog import schema
from batchgen.runlog.fsio import create_temp, fsync_dir

REPLACES_KEY = b"batchgen.replaces"
_NAME = re.compile(r"^(part|compact)-(\d{5,})-(\d{6,})\.parquet$")
# a compact file holds row groups of about this many rows: big enough for fast scans,
# small enough that compaction never holds more than this in memory
COMPACT_ROW_GROUP = 4_096  # small groups: compaction memory stays flat whatever the log size


@dataclass(frozen=True, slots=True, order=True)
class LogFile:
    session: int
    seq: int
    kind: str  # "part" or "compact"
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def part_name(session: int, seq: int) -> str:
    return f"part-{session:05d}-{seq:06d}.parquet"


def compact_name(session: int, seq: int) -> str:
    return f"compact-{session:05d}-{seq:06d}.parquet"


def scan(log_dir: Path) -> list[LogFile]:
    """Every complete log file (parts and compact files, replaced or not), in write order.

    readdir may miss entries renamed or deleted while it runs, so a compaction racing one
    listing could hide both a new compact file and the parts it just deleted. A compaction
    renames before it deletes, so two identical listings in a row are a consistent view."""
    previous = _scan_once(log_dir)
    for _ in range(100):
        current = _scan_once(log_dir)
        if current == previous:
            return current
        previous = current
    msg = f"{log_dir}: the file list kept changing under the reader; is a writer looping?"
    raise OSError(msg)


def _scan_once(log_dir: Path) -> list[LogFile]:
    found = []
    try:
        entries = list(os.scandir(log_dir))
    except FileNotFoundError:
        return []
    for entry in entries:
        m = _NAME.match(entry.name)
        if m:
            found.append(LogFile(int(m[2]), int(m[3]), m[1], Path(entry.path)))
    found.sort()
    return found


def replaced_by(path: Path) -> list[str]:
    """The file names a compact file replaces (read from its footer only)."""
    meta = pq.read_metadata(path).metadata or {}
    raw = meta.get(REPLACES_KEY)
    return list(json.loads(raw)) if raw else []


def split_replaced(files: list[LogFile]) -> tuple[list[LogFile], list[LogFile]]:
    """(visible, replaced): a file is replaced if any existing compact file names it."""
    replaced: set[str] = set()
    for f in files:
        if f.kind == "compact":
            try:
                replaced.update(replaced_by(f.path))
            except (pa.ArrowException, OSError, ValueError):
                continue  # a damaged compact file replaces nothing (see ``find_damaged``)
    visible = [f for f in files if f.name not in replaced]
    gone = [f for f in files if f.name in replaced]
    return visible, gone


def visible_files(log_dir: Path) -> list[LogFile]:
    return split_replaced(scan(log_dir))[0]


QUARANTINE = "_quarantine"  # pyarrow, pandas and DuckDB's *.parquet glob all skip it


def find_damaged(paths: list[Path], *, deep: bool = False) -> list[Path]:
    """The files among ``paths`` that are not readable Parquet (truncated, overwritten): their
    footer does not parse or, with ``deep``, a page does not decode (reads every row)."""
    bad = []
    for path in paths:
        try:
            with pq.ParquetFile(path, pre_buffer=False) as f:
                if deep:
                    for _ in f.iter_batches(batch_size=COMPACT_ROW_GROUP, use_threads=False):
                        pass
        except FileNotFoundError:
            continue  # compacted away meanwhile: not damaged
        except (pa.ArrowException, OSError, ValueError):
            bad.append(Path(path))
    return bad


def quarantine(log_dir: Path, damaged: list[Path]) -> list[Path]:
    """Move damaged files to ``log/_quarantine/`` (kept for inspection, ignored by every
    reader). Only under the run lock. Returns the new paths."""
    if not damaged:
        return []
    folder = Path(log_dir) / QUARANTINE
    folder.mkdir(exist_ok=True)
    moved = []
    for path in damaged:
        target = folder / path.name
        n = 1
        while target.exists():
            target = folder / f"{path.name}.{n}"
            n += 1
        os.replace(path, target)
        moved.append(target)
    fsync_dir(Path(log_dir))
    fsync_dir(folder)
    return moved


def quarantine_damaged(log_dir: Path, *, deep: bool = False) -> list[Path]:
    """Find the damaged visible files of ``log_dir`` and quarantine them (resume, under the
    lock, before anything reads the log). Returns their original paths."""
    bad = find_damaged([f.path for f in visible_files(log_dir)], deep=deep)
    quarantine(log_dir, bad)
    return bad


def damaged_message(path: Path, moved: bool) -> str:
    where = f"moved to {path.parent / QUARANTINE}/" if moved else "skipped"
    return (
        f"batchgen: the log file {path} is damaged (not readable Parquet): {where}; the rows "
        "it held are unknown, so its jobs count as not run (resume runs them again and "
        "adopts their saved images)"
    )


def conform(table: pa.Table) -> pa.Table:
    """Give a table exactly SCHEMA's columns (files from an older schema lack later columns)."""
    if table.schema.equals(schema.SCHEMA):
        return table
    cols = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema.SCHEMA
    ]
    return pa.Table.from_arrays(cols, schema=schema.SCHEMA)


def compact(log_dir: Path, session: int, sources: list[LogFile]) -> Path:
    """Merge ``sources`` (one session's files, in order) into ``compact-<session>-<seq>``
    where ``seq`` is the last source's: the merged rows sort exactly where their sources did,
    even if later parts exist.

    Streams source files through a ParquetWriter so memory stays at one row group.
    """
    seq = max(s.seq for s in sources)
    names = [s.name for s in sources]
    # transitive: a source compact file's own leftovers (if a crash left any) stay covered
    # after that compact file is deleted
    names += [n for s in sources if s.kind == "compact" for n in replaced_by(s.path)]
    target = log_dir / compact_name(session, seq)
    if target.name in names:
        # the last source is itself a compact file (the session's files are all sources, so
        # nothing of this session sorts after it): take the next number rather than its name
        seq += 1
        target = log_dir / compact_name(session, seq)
    if target.exists():
        msg = f"{target}: a compact file with this name exists already; refusing to overwrite it"
        raise FileExistsError(msg)
    tmp = log_dir / f".{target.name}.tmp"
    out_schema = schema.SCHEMA.with_metadata({REPLACES_KEY: json.dumps(names).encode()})
    try:
        _merge_into(tmp, out_schema, sources)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk gets its space back; the sources stay
        raise
    faultpoints.hit("compact:before_rename")
    os.replace(tmp, target)
    fsync_dir(log_dir)
    faultpoints.hit("compact:after_rename")
    for i, src in enumerate(sources):
        src.path.unlink(missing_ok=True)
        if i == 0:
            faultpoints.hit("compact:mid_delete")
    fsync_dir(log_dir)
    return target


def _merge_into(tmp: Path, out_schema: pa.Schema, sources: list[LogFile]) -> None:
    with create_temp(tmp) as sink:
        faultpoints.fail("compact:write")
        with pq.ParquetWriter(sink, out_schema, compression="zstd") as writer:
            pending: list[pa.Table] = []
            rows = 0
            for src in sources:
                # batch by batch (a source may be an earlier compact file of the whole
                # session), one thread, no pre-buffering, each file closed when read: memory
                # stays flat however many parts a long session left
                with pq.ParquetFile(src.path, pre_buffer=False) as source:
                    for batch in source.iter_batches(
                        batch_size=COMPACT_ROW_GROUP, use_threads=False
                    ):
                        t = conform(pa.Table.from_batches([batch])).replace_schema_metadata(None)
                        pending.append(t)
                        rows += t.num_rows
                        if rows >= COMPACT_ROW_GROUP:
                            writer.write_table(pa.concat_tables(pending), COMPACT_ROW_GROUP)
                            pending, rows = [], 0
            if pending:
                writer.write_table(pa.concat_tables(pending), COMPACT_ROW_GROUP)
        sink.flush()
        os.fsync(sink.fileno())


@dataclass(frozen=True, slots=True)
class Recovery:
    temp_deleted: tuple[str, ...]
    replaced_deleted: tuple[str, ...]
    compacted: tuple[str, ...]  # compact files written


def recover(log_dir: Path) -> Recovery:
    """Delete temp files and files already replaced by a compact file.

    Only safe while no writer is running on ``log_dir`` (hold ``RunDir.lock()``): a live
    writer's temp file would be deleted under it.
    """
    temps = []
    for entry in os.scandir(log_dir) if log_dir.exists() else []:
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            os.unlink(entry.path)
            temps.append(entry.name)
    _, gone = split_replaced(scan(log_dir))
    # parts before compact files: a compact file's replaces list must outlive its leftovers
    for f in sorted(gone, key=lambda f: f.kind != "part"):
        f.path.unlink(missing_ok=True)
    if temps or gone:
        fsync_dir(log_dir)
    return Recovery(tuple(temps), tuple(f.name for f in gone), ())


def compact_all(log_dir: Path) -> Recovery:
    """Recover, then merge every session that has more than one file or any part file left
    (a crashed session's parts) into one compact file per session. Resume calls this first,
    under the run lock."""
    rec = recover(log_dir)
    by_session: dict[int, list[LogFile]] = {}
    for f in visible_files(log_dir):
        by_session.setdefault(f.session, []).append(f)
    written = []
    for session, files in sorted(by_session.items()):
        if len(files) == 1 and files[0].kind == "compact":
            continue
        written.append(compact(log_dir, session, files).name)
    return Recovery(rec.temp_deleted, rec.replaced_deleted, tuple(written))
