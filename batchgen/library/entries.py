"""A run directory's reusable answers: per request fingerprint, the first successful
answer's images (the original request, not a regeneration round) and its best score."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc

from batchgen.quality.store import read_scores
from batchgen.runlog.reader import read_log


@dataclass(frozen=True, slots=True)
class Entry:
    fingerprint: str
    run_id: str
    run_dir: str  # the source run directory, absolute
    job_id: str
    images: tuple[Path, ...]  # absolute paths
    score: float | None  # the best score of its images (any scorer), None: not scored
    model: str | None = None
    prompt: str | None = None


def run_entries(run_dir: Path | str) -> list[Entry]:
    """One entry per fingerprint with a saved answer (images present on disk)."""
    root = Path(run_dir).resolve()
    cols = ["run_id", "job_id", "fingerprint", "status", "image_paths", "model", "prompt"]
    table = read_log(root, cols, filter=pc.field("status") == "ok")
    scores = _best_scores(root)
    seen: dict[str, Entry] = {}
    for r in table.to_pylist():
        fp, paths = r["fingerprint"], r["image_paths"] or []
        if not fp or not paths or fp in seen or any("~r" in p for p in paths):
            continue
        files = tuple(root / p for p in paths)
        if not all(_own_file(root, f) for f in files):
            continue
        found = [scores[p] for p in paths if p in scores]
        seen[fp] = Entry(
            fp,
            str(r["run_id"]),
            str(root),
            str(r["job_id"]),
            files,
            max(found) if found else None,
            r["model"],
            r["prompt"],
        )
    return list(seen.values())


def _own_file(root: Path, path: Path) -> bool:
    """A regular file of the run itself: not a symlink, not anywhere but under ``root`` (a
    run directory from elsewhere whose images/x.png points at ~/.ssh/id_ed25519 must not put
    that file into a library, or into a run that reuses it)."""
    try:
        return not path.is_symlink() and path.is_file() and path.resolve().is_relative_to(root)
    except OSError:
        return False


def _best_scores(run_dir: Path) -> dict[str, float]:
    """image path (as the log names it) → its best ok score of any scorer."""
    out: dict[str, float] = {}
    for r in read_scores(run_dir).to_pylist():
        if r["status"] == "ok" and r["score"] is not None:
            path = r["image_path"]
            out[path] = max(out.get(path, r["score"]), r["score"])
    return out
