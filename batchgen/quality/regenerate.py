"""Regenerate the weak ones: ``batchgen resume RUN_DIR --regenerate-below S [--max-rounds R]``.

A job is weak when its best scored image scores under S. Each round is one session of the
images pool over the weak jobs only, with their images saved under a round tag
(``<job_id>~r<round>_<i>.<ext>``: nothing is overwritten, nothing deleted), then those new
images are scored with the scorer of the last ``score`` (or the one given again). Rounds stop
after R, when no job is weak, or when --max-cost (the run directory's total: images and
scoring) leaves nothing for the next request. ``scores/best.json`` marks each job's best image.

The rounds themselves are the session layer's (``batchgen.session.regenerate``); here are
the helpers they and ``batchgen score`` read: each job's best image, the weak jobs, the next
round's number.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from batchgen.quality.score import image_round
from batchgen.quality.store import read_scores, save_best
from batchgen.runlog.reader import read_log


def best_per_job(run_dir: Path, scorer: str) -> dict[str, dict[str, Any]]:
    """job id → its best image by ``scorer`` (ties: the earlier round); ok verdicts only."""
    t = read_scores(run_dir, scorer)
    best: dict[str, dict[str, Any]] = {}
    for r in t.to_pylist():
        if r["status"] != "ok" or r["score"] is None:
            continue
        cur = best.get(r["job_id"])
        if (
            cur is None
            or r["score"] > cur["score"]
            or (r["score"] == cur["score"] and (r["round"] or 1) < cur["round"])
        ):
            best[r["job_id"]] = {
                "image_path": r["image_path"],
                "score": r["score"],
                "round": r["round"] or 1,
            }
    return best


def weakest(run_dir: Path, scorer: str, k: int) -> list[dict[str, Any]]:
    rows = [r for r in read_scores(run_dir, scorer).to_pylist() if r["status"] == "ok"]
    rows.sort(key=lambda r: (r["score"], r["image_path"]))
    return rows[:k]


def weak_jobs(run_dir: Path, scorer: str, threshold: float) -> dict[str, float]:
    return {
        j: b["score"] for j, b in best_per_job(run_dir, scorer).items() if b["score"] < threshold
    }


_TAG = re.compile(r"~r(\d+)_\d+\.")


def next_round(run_dir: Path) -> int:
    """One past every round in the log and on disk (a round killed before its rows landed
    left its images: the next round's names must not overwrite them)."""

    t = read_log(run_dir, ["job_id", "image_paths"])
    top = 1
    for job_id, paths in zip(t["job_id"].to_pylist(), t["image_paths"].to_pylist(), strict=True):
        for p in paths or []:
            top = max(top, image_round(job_id, p))
    images = Path(run_dir) / "images"
    for name in os.listdir(images) if images.is_dir() else ():
        found = _TAG.search(name)
        if found:
            top = max(top, int(found.group(1)))
    return top + 1


def mark_best(run_dir: Path, scorer: str) -> None:
    save_best(run_dir, best_per_job(run_dir, scorer))
