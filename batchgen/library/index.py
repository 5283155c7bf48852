"""The reuse library: a folder of image files named by their sha256 (content-addressed: the
same image from two runs is stored once) and an SQLite index of entries (fingerprint → the
images of one answer, the run it came from, its score).

Why SQLite: stdlib, one file, WAL journaling lets readers go on while a run adds, and
``BEGIN IMMEDIATE`` transactions serialise two writers (``busy_timeout`` makes the second
wait), so two runs adding at once never corrupt the index. Files are written first (temp
name, then rename: hard link when the library and the run share a file system, else a copy)
and only then entered in the index, so a crash leaves at most a file no entry names, which
``gc`` removes.

    LIBRARY/index.sqlite
    LIBRARY/files/<sha[:2]>/<sha256>.<ext>
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.errors import UsageError

if TYPE_CHECKING:
    # a type only: entries.py reads run directories' logs (pandas, pyarrow.dataset), which
    # the index's own commands (`batchgen library list`, `gc`, a run's --reuse lookups) skip
    from batchgen.library.entries import Entry

DEFAULT_LIBRARY = Path.home() / ".batchgen" / "library"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files(
    sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, bytes INTEGER NOT NULL, added_at REAL);
CREATE TABLE IF NOT EXISTS entries(
    fingerprint TEXT NOT NULL, run_id TEXT NOT NULL, job_id TEXT NOT NULL, run_dir TEXT,
    images TEXT NOT NULL, score REAL, model TEXT, prompt TEXT, added_at REAL,
    PRIMARY KEY (fingerprint, run_id, job_id));
CREATE INDEX IF NOT EXISTS entries_fp ON entries(fingerprint);
"""


@dataclass(frozen=True, slots=True)
class Stored:
    """One entry found in the library: its image files (absolute) and where it came from."""

    fingerprint: str
    run_id: str
    run_dir: str
    job_id: str
    images: tuple[Path, ...]
    score: float | None


def _wal(con: sqlite3.Connection, tries: int = 300) -> None:
    """Put the index in WAL mode (it stays so in the file). Switching a new file's journal
    mode while another process opens it can fail at once with "database is locked": SQLite
    does not call the busy handler there (two `library add`s on a new library, seen in a
    test); so the mode is read first and the switch retried for a few seconds."""
    for _ in range(tries):
        try:
            if con.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(0.01 + random.random() * 0.02)
    con.execute("PRAGMA journal_mode=WAL")  # the last try raises what it meets


class Library:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()
        self.files_dir = self.root / "files"

    @property
    def index_path(self) -> Path:
        return self.root / "index.sqlite"

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.root.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.index_path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA busy_timeout=30000")
            _wal(con)
            con.execute("PRAGMA synchronous=FULL")
            con.executescript(_SCHEMA)
            yield con
        finally:
            con.close()

    def check(self) -> None:
        """Raise UsageError (naming the file and the fix) when the index cannot be used."""

        try:
            with self._db() as con:
                con.execute("SELECT COUNT(*) FROM entries").fetchone()
        except (sqlite3.Error, OSError) as exc:
            msg = (
                f"{self.index_path}: not a usable batchgen library index ({exc}); move it "
                "aside (the image files beside it stay) or choose another library"
            )
            raise UsageError(msg) from None

    # -- adding --------------------------------------------------------------------------
    def add_entries(self, entries: list[Entry]) -> tuple[int, int]:
        """Store the entries' images, then index them in one transaction; returns
        (entries added or refreshed, image files newly stored)."""
        stored: list[tuple[Entry, list[tuple[str, str, int]]]] = []
        new_files = 0
        for e in entries:
            files = []
            for src in e.images:
                sha, name, size, fresh = self._store_file(src)
                files.append((sha, name, size))
                new_files += fresh
            stored.append((e, files))
        now = time.time()
        with self._db() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                for e, files in stored:
                    con.executemany(
                        "INSERT OR IGNORE INTO files VALUES (?, ?, ?, ?)",
                        [(sha, name, size, now) for sha, name, size in files],
                    )
                    con.execute(
                        "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            e.fingerprint,
                            e.run_id,
                            e.job_id,
                            e.run_dir,
                            json.dumps([sha for sha, _, _ in files]),
                            e.score,
                            e.model,
                            e.prompt,
                            now,
                        ),
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return len(stored), new_files

    def _store_file(self, src: Path) -> tuple[str, str, int, bool]:
        sha = sha256_of(src)
        name = f"{sha[:2]}/{sha}{src.suffix.lower()}"
        dest = self.files_dir / name
        if intact(dest, sha):
            return sha, name, dest.stat().st_size, False
        # absent, or edited in place since (a hard link shares the run's edits): stored anew
        dest.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(src, dest)
        return sha, name, dest.stat().st_size, True

    # -- finding -------------------------------------------------------------------------
    def lookup(self, fingerprint: str, bar: float | None = None) -> Stored | None:
        """The best-scoring (then newest) entry of this fingerprint whose files are all
        present; with ``bar``, only one scored at or above it."""
        if not self.index_path.is_file():
            return None
        query = "SELECT fingerprint, run_id, run_dir, job_id, images, score FROM entries "
        query += "WHERE fingerprint = ?"
        args: list[Any] = [fingerprint]
        if bar is not None:
            query += " AND score >= ?"
            args.append(bar)
        query += " ORDER BY (score IS NULL), score DESC, added_at DESC"
        with self._db() as con:
            rows = con.execute(query, args).fetchall()
            names = {}
            for row in rows:
                shas = json.loads(row[4])
                for sha in shas:
                    found = con.execute("SELECT name FROM files WHERE sha256 = ?", (sha,))
                    hit = found.fetchone()
                    if hit is not None:
                        names[sha] = hit[0]
                paths = tuple(self.files_dir / names[s] for s in shas if s in names)
                # each file still holds the bytes its name (sha256) says: a file stored as a
                # hard link to a run's image changes when that image is edited in place, and
                # a reuse hands out only what the model answered (else the request is sent)
                if len(paths) == len(shas) and all(map(intact, paths, shas)):
                    return Stored(row[0], row[1], row[2] or "", row[3], paths, row[5])
        return None

    # -- listing and collecting ----------------------------------------------------------
    def runs(self) -> list[dict[str, Any]]:
        # counted here, not with SQLite's JSON functions (not in every Python's SQLite)
        out: dict[tuple[str, str], dict[str, Any]] = {}
        with self._db() as con:
            query = "SELECT run_id, run_dir, images, score, added_at FROM entries"
            for run_id, run_dir, images, score, added in con.execute(query):
                r = out.setdefault(
                    (run_id, run_dir),
                    {
                        "run_id": run_id,
                        "run_dir": run_dir,
                        "entries": 0,
                        "images": 0,
                        "scores": [],
                        "added_at": added,
                    },
                )
                r["entries"] += 1
                r["images"] += len(json.loads(images))
                r["added_at"] = max(r["added_at"], added)
                if score is not None:
                    r["scores"].append(score)
        rows = sorted(out.values(), key=lambda r: r["added_at"])
        for r in rows:
            scores = r.pop("scores")
            r["mean_score"] = sum(scores) / len(scores) if scores else None
        return rows

    def totals(self) -> dict[str, int]:
        with self._db() as con:
            entries = con.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            cur = con.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM files")
            files, size = cur.fetchone()
        return {"entries": int(entries), "files": int(files), "bytes": int(size)}

    def gc(self, *, drop_run: str | None = None) -> dict[str, int]:
        """Drop the entries of ``drop_run`` (a run id or directory) if given and entries
        whose files are gone; then delete files no entry names (and leftover temp files)."""
        removed_entries = removed_files = 0
        with self._db() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                if drop_run is not None:
                    cur = con.execute(
                        "DELETE FROM entries WHERE run_id = ? OR run_dir = ?",
                        (drop_run, str(Path(drop_run).resolve())),
                    )
                    removed_entries += cur.rowcount
                names = dict(con.execute("SELECT sha256, name FROM files").fetchall())
                for fp, run_id, job_id, images in con.execute(
                    "SELECT fingerprint, run_id, job_id, images FROM entries"
                ).fetchall():
                    shas = json.loads(images)
                    if not all(s in names and (self.files_dir / names[s]).is_file() for s in shas):
                        con.execute(
                            "DELETE FROM entries WHERE fingerprint=? AND run_id=? AND job_id=?",
                            (fp, run_id, job_id),
                        )
                        removed_entries += 1
                used: set[str] = set()
                for (images,) in con.execute("SELECT images FROM entries").fetchall():
                    used.update(json.loads(images))
                for sha, name in names.items():
                    if sha not in used:
                        con.execute("DELETE FROM files WHERE sha256 = ?", (sha,))
                        with contextlib.suppress(FileNotFoundError):
                            (self.files_dir / name).unlink()
                            removed_files += 1
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            indexed = {name for name in names.values()}
        # files on disk the index never named: a crash between the copy and the commit
        if self.files_dir.is_dir():
            for path in self.files_dir.glob("*/*"):
                rel = f"{path.parent.name}/{path.name}"
                stray = rel not in indexed or path.name.startswith(".")
                if stray and not _recent(path):
                    path.unlink(missing_ok=True)
                    removed_files += 1
        return {"entries": removed_entries, "files": removed_files}


def _recent(path: Path, seconds: float = 3600.0) -> bool:
    """A file this young may belong to a run adding right now: gc leaves it."""
    try:
        return time.time() - path.stat().st_mtime < seconds
    except FileNotFoundError:
        return True


def sha256_of(path: Path) -> str:
    data_hash = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            data_hash.update(chunk)
    return data_hash.hexdigest()


def intact(path: Path, sha: str) -> bool:
    """``path`` is a regular file (not a symlink) whose bytes hash to ``sha``."""
    try:
        return not path.is_symlink() and path.is_file() and sha256_of(path) == sha
    except OSError:
        return False


def link_or_copy(src: Path, dest: Path) -> None:
    """``dest`` holds ``src``'s bytes, atomically: a hard link (same file system) or a copy,
    to a temp name first, then renamed. batchgen never rewrites an image in place, so a
    hard link shares nothing that changes (a user's tool may: the library checks each
    file's sha256 before handing it out). A symlink is refused (OSError): its target may be
    any file of the user's."""
    if src.is_symlink():
        raise OSError(f"{src} is a symbolic link, not an image file of a run")
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            with tmp.open("rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
