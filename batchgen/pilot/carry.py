"""The pilot's verdicts go with its images: after a ``--from-pilot`` run, each image it took
from the pilot gets the pilot's score rows (same bytes, same scorer), so the quality loop
(``--regenerate-below``) does not pay the judge again for what the pilot judged."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from batchgen.quality.store import ScoreStore, next_session, read_scores
from batchgen.runlog.reader import read_log


def carry_scores(pilot_dir: Path, run_dir: Path) -> int:
    """Copy the pilot's ok verdicts of the images this run reused; returns rows written.
    Matched by the image's sha256, so only the very same picture takes a verdict."""
    verdicts: dict[str, list[dict[str, Any]]] = {}
    for r in read_scores(pilot_dir).to_pylist():
        if r["status"] == "ok" and r["score"] is not None:
            verdicts.setdefault(r["image_sha256"], []).append(r)
    if not verdicts:
        return 0
    log = read_log(
        run_dir,
        ["run_id", "job_id", "image_paths", "cost_source"],
        filter=pc.field("cost_source") == "reused",
    )
    have = {(r["image_path"], r["scorer"]) for r in read_scores(run_dir).to_pylist()}
    rows = []
    for r in log.to_pylist():
        for path in r["image_paths"] or []:
            try:
                sha = hashlib.sha256((run_dir / path).read_bytes()).hexdigest()
            except OSError:
                continue
            for v in verdicts.get(sha, []):
                if (path, v["scorer"]) in have:
                    continue
                have.add((path, v["scorer"]))
                note = f"{v['reasons'] or ''} (judged in the pilot)".strip()
                rows.append(
                    {
                        **v,
                        "run_id": r["run_id"],
                        "job_id": r["job_id"],
                        "image_path": path,
                        "round": 1,
                        "cost_usd": 0.0,
                        "cost_source": "none",
                        "attempts": 0,
                        "reasons": note,
                    }
                )
    if rows:
        store = ScoreStore(run_dir, next_session(run_dir))
        store.add(rows)
        store.close()
    return len(rows)
