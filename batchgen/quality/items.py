"""Which saved images to score, and what killed judging sessions' journals say.

An image is named by its path and its sha256 (``ImageItem.key``); a scorer's ok verdict for
that key means it is done. The judging pool (quality/score.py) journals each key before its
request leaves; a session that ends without a kill removes its journal, so a journal found at
start names images that may have been judged (and billed) twice.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from batchgen.quality.store import read_scores
from batchgen.runlog.reader import read_log
from batchgen.storage.cache import is_uri, read_image

JOURNAL_PREFIX = "judge-sent-"
TWICE_FILE = "judge-possibly-twice.txt"


@dataclass(frozen=True, slots=True)
class ImageItem:
    """One saved image, as the log names it."""

    job_id: str
    image_path: str  # images/<name>
    sha256: str
    round: int
    prompt: str
    model: str | None
    quality: str | None
    size: str | None

    @property
    def key(self) -> str:
        return f"{self.image_path}\t{self.sha256}"


def image_round(job_id: str, image_path: str) -> int:
    """1 for ``<job>_<i>.ext``; r for a regeneration's ``<job>~r<r>_<i>.ext``."""
    rest = Path(image_path).name[len(job_id) :]
    if rest.startswith("~r"):
        digits = rest[2:].split("_", 1)[0]
        if digits.isdigit():
            return int(digits)
    return 1


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_of(run_dir: Path, logged: str) -> str | None:
    """The image's sha256, None when it is gone: a file of the run read in chunks, an object
    (``--images-to``) read through the store."""
    if not is_uri(logged):
        path = run_dir / logged
        return sha256_file(path) if path.is_file() else None
    data = read_image(run_dir, logged)
    return None if data is None else hashlib.sha256(data).hexdigest()


def saved_images(run_dir: Path) -> list[ImageItem]:
    """Every image an ok row of the log names that can be read (a file of the run, or an
    object of ``--images-to``), in log order."""
    t = read_log(run_dir, ["job_id", "status", "image_paths", "prompt", "model", "quality", "size"])
    out: list[ImageItem] = []
    seen: set[str] = set()
    for row in t.to_pylist():
        if row["status"] != "ok":
            continue
        for rel in row["image_paths"] or []:
            if rel in seen:
                continue
            sha = _sha256_of(run_dir, rel)
            if sha is None:
                continue
            seen.add(rel)
            out.append(
                ImageItem(
                    row["job_id"],
                    rel,
                    sha,
                    image_round(row["job_id"], rel),
                    row["prompt"] or "",
                    row["model"],
                    row["quality"],
                    row["size"],
                )
            )
    return out


def to_score(run_dir: Path, scorer: str, rescore: bool = False) -> tuple[list[ImageItem], int]:
    """(images without an ok verdict of ``scorer``, how many already have one)."""
    items = saved_images(run_dir)
    if rescore:
        return items, 0
    done = read_scores(run_dir, scorer)
    ok = {
        f"{p}\t{s}"
        for p, s, st in zip(
            done["image_path"].to_pylist(),
            done["image_sha256"].to_pylist(),
            done["status"].to_pylist(),
            strict=True,
        )
        if st == "ok"
    }
    todo = [i for i in items if i.key not in ok]
    return todo, len(items) - len(todo)


def possibly_judged_twice(run_dir: Path, state_dir: Path) -> set[str]:
    """Image keys journaled by an earlier session that ended without removing its journal
    (killed) — sent, and maybe judged, but with no verdict saved."""
    sent: set[str] = set()
    for p in state_dir.glob(f"{JOURNAL_PREFIX}*.txt"):
        sent.update(line for line in p.read_text("utf-8").splitlines() if line)
    if not sent:
        return set()
    done = read_scores(run_dir)
    have = {
        f"{p}\t{s}"
        for p, s, st in zip(
            done["image_path"].to_pylist(),
            done["image_sha256"].to_pylist(),
            done["status"].to_pylist(),
            strict=True,
        )
        if st == "ok"
    }
    return sent - have


def settle_journals(run_dir: Path, state_dir: Path) -> int:
    """Move what killed sessions' journals say into the run's record of images possibly
    judged twice (kept, deduplicated, fsynced) and remove the journals; returns the record's
    size: every image of this run that may have been judged (and billed) twice."""
    record = state_dir / TWICE_FILE
    known = set(record.read_text("utf-8").splitlines()) if record.exists() else set()
    new = possibly_judged_twice(run_dir, state_dir) - known
    if new:
        with open(record, "a", encoding="utf-8") as f:
            f.write("".join(f"{k}\n" for k in sorted(new)))
            f.flush()
            os.fsync(f.fileno())
    for p in state_dir.glob(f"{JOURNAL_PREFIX}*.txt"):
        p.unlink(missing_ok=True)
    return len(known | new)
