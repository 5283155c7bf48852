"""The images of a run, one record each, streamed from the log: ok rows only, the images on
disk, each with its prompt, job id, model, quality, size, vars, score, defects, cost and
latency. Filters: ``best`` (each job's best image by the quality loop's score), ``min_score``.

Memory stays flat: the log is scanned in record batches of a few columns; only the scores
(one small row per scored image) are held, as a dict by image path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as ds

from batchgen.errors import UsageError
from batchgen.quality.store import read_scores
from batchgen.runlog.reader import log_files
from batchgen.runlog.schema import SCHEMA, STATUS_OK
from batchgen.storage.cache import is_uri

_COLUMNS = [
    "run_id",
    "session",
    "job_id",
    "attempt",
    "status",
    "model",
    "prompt",
    "size",
    "quality",
    "n",
    "params",
    "vars",
    "image_paths",
    "cost_usd",
    "latency_s",
    "revised_prompt",
    "finished_at",
]
_BATCH_ROWS = 256


@dataclass(frozen=True, slots=True)
class Filters:
    status: str = "ok"
    best: bool = False
    min_score: float | None = None


def _scores(run_dir: Path) -> dict[str, dict[str, Any]]:
    """image path (images/NAME) → {score, defects}: the latest ok verdict of any scorer."""

    table = read_scores(run_dir)
    out: dict[str, dict[str, Any]] = {}
    if not table.num_rows:
        return out
    cols = table.select(["image_path", "score", "defects", "status", "scorer"]).to_pylist()
    for r in cols:
        if r["status"] == "ok" and r["score"] is not None:
            out[r["image_path"]] = {
                "score": float(r["score"]),
                "defects": r["defects"] or [],
                "scorer": r["scorer"],
            }
    return out


def _best(scores: dict[str, dict[str, Any]], job_of: dict[str, str]) -> set[str]:
    best: dict[str, tuple[float, str]] = {}
    for path, s in scores.items():
        job = job_of.get(path)
        if job is not None and (job not in best or s["score"] > best[job][0]):
            best[job] = (s["score"], path)
    return {path for _, path in best.values()}


def iter_records(
    run_dir: str | Path, filters: Filters | None = None, missing: set[str] | None = None
) -> Iterator[dict[str, Any]]:
    """One dict per exported image: ``key``, ``path`` (absolute), ``file`` (images/NAME) and
    the metadata columns. An image the log names that is not on disk (deleted: curation, or
    moved) is skipped, its name added to ``missing``. Raises UsageError for a directory that
    is no run."""
    root = Path(run_dir)
    if not (root / "run.json").is_file():
        msg = f"{root}: not a run directory (no run.json); give the directory `batchgen run` made"
        raise UsageError(msg)
    filters = filters or Filters()
    if filters.status != "ok":
        msg = f"--status {filters.status}: only ok attempts have images to export"
        raise UsageError(msg)
    scores = _scores(root)
    if (filters.best or filters.min_score is not None) and not scores:
        msg = f"{root}: no scores yet: run `batchgen score {root}` before --best / --min-score"
        raise UsageError(msg)
    keep: set[str] | None = None
    if filters.best:
        keep = _best(scores, _job_of_scored(root))
    return _iterate(root, filters, scores, keep, set() if missing is None else missing)


def _iterate(
    root: Path,
    filters: Filters,
    scores: dict[str, dict[str, Any]],
    keep: set[str] | None,
    missing: set[str],
) -> Iterator[dict[str, Any]]:
    files = [str(p) for p in log_files(root)]
    if not files:
        return
    dataset = ds.dataset(files, schema=SCHEMA, format="parquet")
    scanner = dataset.scanner(
        columns=_COLUMNS, filter=pc.field("status") == STATUS_OK, batch_size=_BATCH_ROWS
    )
    seen: set[str] = set()
    for batch in scanner.to_batches():
        for row in batch.to_pylist():
            paths = row["image_paths"] or []
            for i, rel in enumerate(paths):
                if rel in seen:
                    continue
                score = scores.get(rel)
                if keep is not None and rel not in keep:
                    continue
                if filters.min_score is not None and (
                    score is None or score["score"] < filters.min_score
                ):
                    continue
                # an object of --images-to is read when it is written out (storage.cache)
                path = root / rel
                if not is_uri(rel) and not path.is_file():
                    missing.add(rel)
                    continue
                seen.add(rel)
                yield _record(root, row, rel, path, i, len(paths), score)


def _job_of_scored(root: Path) -> dict[str, str]:
    t = read_scores(root).select(["image_path", "job_id"]).to_pylist()
    return {r["image_path"]: r["job_id"] for r in t}


def sample_key(stem: str) -> str:
    """The image's key: its file's stem, with '.' written %2E (and '%' %25). WebDataset splits
    a member's name at its first '.', so a key holds none; writing '.' as '_' made job
    ``cat.v2``'s image the same sample as job ``cat_v2``'s (both allowed ids): one image lost."""
    return stem.replace("%", "%25").replace(".", "%2E")


def _record(
    root: Path,
    row: dict[str, Any],
    rel: str,
    path: Path,
    index: int,
    count: int,
    score: dict[str, Any] | None,
) -> dict[str, Any]:
    cost = row["cost_usd"]
    stem = Path(rel).stem
    return {
        "key": sample_key(stem),
        "file": rel,
        "path": rel if is_uri(rel) else str(path.resolve()),
        "ext": Path(rel).suffix.lstrip(".").lower(),
        "run_id": row["run_id"],
        "job_id": row["job_id"],
        "image_index": index,
        "prompt": row["prompt"],
        "revised_prompt": row["revised_prompt"],
        "model": row["model"],
        "quality": row["quality"],
        "size": row["size"],
        "vars": json.loads(row["vars"]) if row["vars"] else None,
        "score": score["score"] if score else None,
        "defects": list(score["defects"]) if score else None,
        "cost_usd": (cost / count) if cost is not None and count else None,
        "latency_s": row["latency_s"],
    }
