"""Synthetic run directories: a log of any size (vectorised numpy, 1M rows in seconds) with
chosen fault rates, for the analyzers' tests and the report's speed measurement.

The log follows ``batchgen.runlog.schema`` exactly; tests compute the expected figures from
the returned table on their own, not from this module.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchgen.analyze.run import analyze_run
from batchgen.reports import to_json
from batchgen.runlog.schema import SCHEMA

# (model, quality, size, usd per image): a small price list, close to the published one.
GROUPS = (
    ("gpt-image-1", "medium", "1024x1024", 0.042),
    ("gpt-image-1", "high", "1024x1536", 0.25),
    ("gpt-image-1-mini", "low", "1024x1024", 0.005),
)
RETRY_CLASSES = ("rate_limit", "server", "timeout")
HTTP = {"rate_limit": 429, "server": 503, "timeout": None, "content_policy": 400, "cancelled": None}
CODES = {
    "rate_limit": "rate_limit_exceeded",
    "server": None,
    "timeout": None,
    "content_policy": "moderation_blocked",
    "cancelled": "in_flight_at_crash",
}
MESSAGES = {
    "rate_limit": "Rate limit reached for images per min",
    "server": "Service unavailable",
    "timeout": "no answer within 60 s",
    "content_policy": "Your request was rejected by the safety system",
    "cancelled": "in flight when the session crashed",
}


@dataclass(frozen=True, slots=True)
class Faults:
    rate_limit: float = 0.04  # per attempt
    server: float = 0.02
    timeout: float = 0.01
    content_policy: float = 0.01  # per job, never retried
    never_taken: float = 0.02  # share of jobs with no row (the run stopped)
    in_flight_at_crash: float = 0.005  # share of jobs cut by a crash in session 1, redone in 2
    unknown_cost: float = 0.01  # share of ok rows without a known cost


def synthetic_log(
    jobs: int,
    *,
    faults: Faults = Faults(),
    seed: int = 0,
    start: float = 1_800_000_000.0,
    duration_s: float = 3600.0,
    max_attempts: int = 4,
    timeout_s: float = 60.0,
    groups: tuple[tuple[str, str, str, float], ...] = GROUPS,
) -> pa.Table:
    """One row per attempt of ``jobs`` jobs; each job is one (model, quality, size, price)
    of ``groups``, drawn at random."""
    rng = np.random.default_rng(seed)
    taken = jobs - round(jobs * faults.never_taken)
    job = np.arange(taken)
    policy = rng.random(taken) < faults.content_policy
    q = faults.rate_limit + faults.server + faults.timeout
    fails = (
        np.minimum(rng.geometric(1 - q, taken) - 1, max_attempts) if q > 0 else np.zeros(taken, int)
    )
    fails = np.where(policy, 1, fails)
    crashed = (rng.random(taken) < faults.in_flight_at_crash) & ~policy
    succeeded = ~policy & (fails < max_attempts)
    n_attempts = np.where(succeeded, fails + 1, fails) + crashed

    row_job = np.repeat(job, n_attempts)
    first = np.repeat(np.cumsum(n_attempts) - n_attempts, n_attempts)
    idx = np.arange(row_job.size) - first  # 0-based row index within the job
    last = idx == np.repeat(n_attempts, n_attempts) - 1
    crash_row = crashed[row_job] & (idx == 0)
    session = np.where(crashed[row_job] & ~crash_row, 2, 1).astype(np.int32)
    attempt = np.where(crashed[row_job] & ~crash_row, idx, idx + 1).astype(np.int32)
    ok = succeeded[row_job] & last

    nrows = row_job.size
    cls = np.asarray(
        rng.choice(
            RETRY_CLASSES, nrows, p=np.array([faults.rate_limit, faults.server, faults.timeout]) / q
        )
        if q > 0
        else np.full(nrows, "server"),
        dtype=object,
    )
    cls = np.where(policy[row_job], "content_policy", cls)
    cls = np.where(crash_row, "cancelled", cls)
    cls = np.where(ok, np.array(None, dtype=object), cls)
    status = np.where(ok, "ok", "error")
    final = last | crash_row

    g = rng.integers(0, len(groups), taken)[row_job]
    finished = start + (np.arange(nrows) + rng.random(nrows)) * (duration_s / nrows)
    finished = np.where(session == 2, finished + duration_s, finished)
    latency = rng.lognormal(np.log(4.0), 0.5, nrows)
    latency = np.where(cls == "timeout", timeout_s, latency)
    latency = np.where(cls == "rate_limit", 0.05, latency)
    price = np.array([p for *_, p in groups])[g]
    unknown = ok & (rng.random(nrows) < faults.unknown_cost)
    cost = np.where(ok & ~unknown, price, 0.0)
    job_ids = np.char.add("job-", np.char.zfill(row_job.astype(str), 7))
    prompts = np.char.add("a watercolour fox, variant ", row_job.astype(str))
    paths = [
        [f"images/{j}_0.png"] if o else None
        for j, o in zip(job_ids.tolist(), ok.tolist(), strict=False)
    ]
    started = finished - latency
    wait = rng.exponential(0.2, nrows)
    cols = {
        "run_id": pa.array(np.full(nrows, "synthetic")),
        "session": pa.array(session),
        "job_id": pa.array(job_ids),
        "job_line": pa.array(row_job + 1),
        "attempt": pa.array(attempt),
        "status": pa.array(status),
        "final": pa.array(final),
        "error_class": pa.array(cls, pa.string()),
        "http_status": pa.array([HTTP.get(c) if c else 200 for c in cls], pa.int32()),
        "error_code": pa.array([CODES.get(c) if c else None for c in cls], pa.string()),
        "error_message": pa.array([MESSAGES.get(c) if c else None for c in cls], pa.string()),
        "provider": pa.array(np.full(nrows, "sim")),
        "model": pa.array(np.array([m for m, *_ in groups])[g]),
        "prompt": pa.array(prompts),
        "size": pa.array(np.array([s for _, _, s, _ in groups])[g]),
        "quality": pa.array(np.array([qq for _, qq, _, _ in groups])[g]),
        "n": pa.array(np.ones(nrows, np.int32)),
        "queued_at": _ts(started - wait - 0.01),
        "started_at": _ts(started),
        "finished_at": _ts(finished),
        "latency_s": pa.array(latency),
        "wait_s": pa.array(wait),
        "retry_after_s": pa.array(
            np.where(cls == "rate_limit", rng.uniform(1, 5, nrows), np.nan), from_pandas=True
        ),
        "image_paths": pa.array(paths, pa.list_(pa.string())),
        "image_count": pa.array(np.where(ok, 1, 0).astype(np.int32)),
        "cost_usd": pa.array(np.where(unknown, np.nan, cost), from_pandas=True),
        "cost_source": pa.array(np.where(ok, np.where(unknown, "unknown", "usage"), "none")),
    }
    missing = {n: pa.nulls(nrows, SCHEMA.field(n).type) for n in SCHEMA.names if n not in cols}
    return pa.table({**cols, **missing}).select(SCHEMA.names).cast(SCHEMA)


def _ts(epoch: np.ndarray) -> pa.Array:
    return pa.array((epoch * 1e6).astype("int64"), pa.int64()).cast(SCHEMA.field("started_at").type)


def write_run(
    run_dir: Path,
    table: pa.Table,
    *,
    jobs: int,
    settings: dict | None = None,
    sessions: list[dict] | None = None,
    part_rows: int = 200_000,
) -> Path:
    """Write ``table`` as part files (the run log's naming) plus a run.json, and a stray temp
    file that readers must ignore."""
    run_dir = Path(run_dir)
    log = run_dir / "log"
    log.mkdir(parents=True, exist_ok=True)
    (run_dir / "images").mkdir(exist_ok=True)
    seq = 0
    for sess in sorted(set(table["session"].to_pylist())):
        rows = table.filter(pc.equal(table["session"], sess))
        for offset in range(0, rows.num_rows, part_rows):
            pq.write_table(
                rows.slice(offset, part_rows), log / f"part-{sess:05d}-{seq:06d}.parquet"
            )
            seq += 1
    # a writer's temp file (a crash mid-write): readers must not see it
    (log / f".part-00001-{seq:06d}.parquet.tmp").write_bytes(b"PAR1 half a file")
    if sessions is None:
        fin = table["finished_at"].cast(pa.int64()).to_numpy(zero_copy_only=False) / 1e6
        sess = table["session"].to_numpy(zero_copy_only=False)
        sessions = []
        for s in sorted(set(sess.tolist())):
            times = fin[sess == s]
            sessions.append(
                {
                    "session": int(s),
                    "started_at": float(times.min()) - 5.0,
                    "ended_at": float(times.max()),
                    "how": "finished",
                }
            )
    manifest = {
        "version": 1,
        "name": run_dir.name,
        "jobs": jobs,
        "images": jobs,
        "settings": settings
        or {"rpm": 600, "ipm": None, "concurrency": 8, "timeout": 60, "max_attempts": 4},
        "sessions": sessions,
    }
    (run_dir / "run.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return run_dir


def table_from_rows(rows: list[dict]) -> pa.Table:
    """Log rows (dicts keyed by schema columns; missing keys are null) as a log table;
    float timestamps are epoch seconds, as the run log's writer takes them."""
    ts = [n for n in SCHEMA.names if pa.types.is_timestamp(SCHEMA.field(n).type)]
    fixed = []
    for r in rows:
        r = dict(r)
        for n in ts:
            if isinstance(r.get(n), (int, float)):
                r[n] = int(r[n] * 1e6)
        fixed.append(r)
    raw = pa.schema([pa.field(f.name, pa.int64()) if f.name in ts else f for f in SCHEMA])
    return pa.Table.from_pylist(fixed, schema=raw).cast(SCHEMA)


def _measure(rows: int = 1_000_000) -> None:
    """``python -m batchgen.testing.synthetic [JOBS]``: time the report on a synthetic log."""
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else rows
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        table = synthetic_log(jobs)
        run = write_run(Path(tmp) / "run", table, jobs=jobs)
        t1 = time.perf_counter()
        report = analyze_run(run, image_checks=False)
        to_json(report)
        t2 = time.perf_counter()
    print(f"{table.num_rows:,} rows: generated in {t1 - t0:.1f} s, reported in {t2 - t1:.1f} s")


if __name__ == "__main__":
    _measure()
