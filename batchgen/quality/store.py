"""The scores table: ``RUN_DIR/scores/*.parquet``, one row per image scored, crash-safe.

Every verdict is written as it arrives, as its own small part file (temp name, fsync, rename,
fsync of the directory: the log's recipe, batchgen/runlog/fsio.py), so ``kill -9`` never loses
a verdict that was received and saved: the next ``batchgen score`` skips it. A judge call
costs seconds and a fraction of a cent; a few milliseconds of fsync per verdict is nothing
beside it. At the end of a session the parts are merged into one compact file whose Parquet
metadata names the parts it replaces (readers here drop those), as the log does.

    part-<session:05d>-<seq:06d>.parquet     one verdict (or a CLIP batch)
    compact-<session:05d>-<seq:06d>.parquet  a session's parts merged

and beside them, in RUN_DIR (so this folder is a pure Parquet dataset)::
    scorer.json                              the scorer of the last `score` (no key)
    best.json                                job id -> its best image and score

Rows are keyed by (image_path, image_sha256, scorer) and join the attempts log on
``job_id`` and ``image_path`` (``list_contains(log.image_paths, scores.image_path)``).
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batchgen import faultpoints
from batchgen.money.spent import SCORES_DIR
from batchgen.runlog.fsio import atomic_write_bytes, fsync_dir
from batchgen.runlog.row import RowContract

REPLACES_KEY = b"batchgen.replaces"
_NAME = re.compile(r"^(part|compact)-(\d{5})-(\d{6})\.parquet$")

SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("session", pa.int32()),  # the score session (its own count, not the log's)
        ("job_id", pa.string()),
        ("image_path", pa.string()),  # as the log names it: images/<name>
        ("image_sha256", pa.string()),
        ("round", pa.int32()),  # 1: the run's image; 2, 3, ...: regeneration rounds
        ("scorer", pa.string()),  # judge:<model>:<rubric sha8> or clip:<model>
        ("score", pa.float64()),  # 1-10; null when scoring failed
        ("defects", pa.list_(pa.string())),
        ("reasons", pa.string()),
        ("status", pa.string()),  # ok / error
        ("error_class", pa.string()),
        ("error_message", pa.string()),
        ("attempts", pa.int32()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cost_usd", pa.float64()),  # every attempt's billed usage for this image
        ("cost_source", pa.string()),  # usage / unknown / local / none
        ("latency_s", pa.float64()),
        ("scored_at", pa.float64()),  # epoch seconds
        ("request_id", pa.string()),
    ]
)


SCORE_ROW = RowContract(
    SCHEMA,
    ("job_id", "image_path", "status"),
    what="score row",
    defined_in="batchgen/quality/store.py",
)


def scores_dir(run_dir: Path | str) -> Path:
    return Path(run_dir) / SCORES_DIR


def _files(folder: Path) -> list[tuple[str, int, int, Path]]:
    out: list[tuple[str, int, int, Path]] = []
    if not folder.is_dir():
        return out
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m:
            out.append((m.group(1), int(m.group(2)), int(m.group(3)), p))
    return sorted(out, key=lambda f: (f[1], f[2], f[0] == "part"))


def visible_files(folder: Path) -> list[Path]:
    """Complete files not replaced by a compact file (a crash mid-compaction hides nothing
    twice)."""
    files = _files(folder)
    replaced: set[str] = set()
    for kind, _s, _q, path in files:
        if kind == "compact":
            try:
                meta = pq.read_schema(path).metadata or {}
            except (OSError, pa.ArrowInvalid):
                continue
            replaced.update(json.loads(meta.get(REPLACES_KEY, b"[]")))
    return [p for _k, _s, _q, p in files if p.name not in replaced]


def next_session(run_dir: Path | str) -> int:
    return max((s for _k, s, _q, _p in _files(scores_dir(run_dir))), default=0) + 1


def read_scores(run_dir: Path | str, scorer: str | None = None, *, latest: bool = True) -> pa.Table:
    """Every score row (the last per image and scorer), optionally of one scorer;
    ``latest=False``: every row ever written."""
    paths = visible_files(scores_dir(run_dir))
    tables = []
    for p in paths:
        try:
            tables.append(pq.read_table(p, schema=SCHEMA))
        except (OSError, pa.ArrowInvalid):
            continue  # a torn file cannot exist (renamed only when complete); be lenient
    if not tables:
        return SCHEMA.empty_table()
    table = pa.concat_tables(tables)
    if not latest:
        return table
    rows = table.to_pylist()
    last: dict[tuple[str, str, str], int] = {}
    for i, r in enumerate(rows):
        if scorer is not None and r["scorer"] != scorer:
            continue
        key = (r["image_path"], r["image_sha256"], r["scorer"])
        # an ok verdict is never displaced by a later failed attempt at the same image
        if key in last and rows[last[key]]["status"] == "ok" and r["status"] != "ok":
            continue
        last[key] = i
    return table.take(pa.array(sorted(last.values()), type=pa.int64()))


class ScoreStore:
    """Writes verdicts durably, one part file each; ``close()`` compacts the session."""

    def __init__(self, run_dir: Path | str, session: int) -> None:
        self.folder = scores_dir(run_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.session = session
        self._seq = max((q for _k, s, q, _p in _files(self.folder) if s == session), default=-1) + 1
        self._parts: list[Path] = []
        self.rows_written = 0
        # workers write from several threads at once: one name per part, one writer at a time
        self._lock = threading.Lock()

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Blocking: the rows are on disk when this returns (call it in a worker thread)."""
        if not rows:
            return
        for row in rows:  # a wrong type or an unknown column is an error here, naming it
            SCORE_ROW.check(row)
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        with self._lock:
            self._write(table)
            self.rows_written += len(rows)
            faultpoints.hit("score:after_save")

    def _write(self, table: pa.Table) -> None:
        name = f"part-{self.session:05d}-{self._seq:06d}.parquet"
        self._seq += 1
        final = self.folder / name
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fsync_dir(self.folder)
        self._parts.append(final)

    def close(self, *, compact: bool = True) -> None:
        if not compact or len(self._parts) < 2:
            return
        sources = [p for p in self._parts if p.exists()]
        table = pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p in sources])
        meta = {REPLACES_KEY: json.dumps([p.name for p in sources]).encode()}
        table = table.replace_schema_metadata(meta)
        name = f"compact-{self.session:05d}-{self._seq - 1:06d}.parquet"
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.folder / name)
        fsync_dir(self.folder)
        for p in sources:
            p.unlink(missing_ok=True)
        self._parts = []


def remove_temp_files(run_dir: Path | str) -> None:
    """Leftovers of a writer killed mid-file, and parts a finished compaction replaced."""
    folder = scores_dir(run_dir)
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if p.name.startswith(".") and p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)
    visible = {p.name for p in visible_files(folder)}
    for _k, _s, _q, p in _files(folder):
        if p.name not in visible:
            p.unlink(missing_ok=True)


# beside run.json, not in scores/: that folder holds only Parquet files, so
# pyarrow.dataset("RUN_DIR/scores") and read_parquet('RUN_DIR/scores/*') read it as it is
SCORER_FILE = "scorer.json"
BEST_FILE = "best.json"


def save_scorer(run_dir: Path | str, config: dict[str, Any]) -> None:
    atomic_write_bytes(Path(run_dir) / SCORER_FILE, json.dumps(config, indent=2).encode())
    old = scores_dir(run_dir) / SCORER_FILE  # left by an older version: it broke the dataset
    if old.exists():
        old.unlink()


def load_scorer(run_dir: Path | str) -> dict[str, Any] | None:
    # a run scored before the move keeps its scorer in scores/
    for path in (Path(run_dir) / SCORER_FILE, scores_dir(run_dir) / SCORER_FILE):
        try:
            return json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
    return None


def best_path(run_dir: Path | str) -> Path:
    return Path(run_dir) / BEST_FILE


def save_best(run_dir: Path | str, best: dict[str, dict[str, Any]]) -> None:
    data = json.dumps(best, indent=1, sort_keys=True).encode()
    atomic_write_bytes(best_path(run_dir), data)
    old = scores_dir(run_dir) / BEST_FILE  # left by an older version: it broke the dataset
    if old.exists():
        old.unlink()
