"""The report's figures by endpoint (`run --providers`): jobs, success, latency, cost and what
each endpoint's autopilot learned, from the log's ``endpoint`` column and run.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from batchgen.analyze.load import read_columns
from batchgen.analyze.model import Endpoint
from batchgen.runlog.manifest import Manifest
from batchgen.runlog.schema import STATUS_OK

_COLUMNS = ["endpoint", "job_id", "status", "latency_s", "cost_usd", "image_count", "error_class"]


def _pct(values: np.ndarray, q: float) -> float | None:
    return None if values.size == 0 else round(float(np.percentile(values, q)), 3)


def endpoint_figures(run_dir: Path, manifest: Manifest) -> tuple[Endpoint, ...]:
    """One entry per endpoint, in the providers file's order; () for a one-endpoint run."""
    recorded = manifest.settings.get("endpoints")
    if not isinstance(recorded, list) or not recorded:
        return ()
    table = read_columns(run_dir, _COLUMNS, filter=pc.field("endpoint").is_valid())
    learned: dict[str | None, Any] = {}
    for session in manifest.sessions:  # the latest session that recorded each endpoint wins
        for recorded_name, found in (session.endpoints or {}).items():
            if isinstance(found, dict):
                learned[recorded_name] = found
    rows = table.to_pydict()
    out: list[Endpoint] = []
    for spec in recorded:
        if not isinstance(spec, dict):
            continue
        name = spec.get("name")
        idx = [i for i, e in enumerate(rows["endpoint"]) if e == name]
        ok = [i for i in idx if rows["status"][i] == STATUS_OK]
        latencies = np.array([rows["latency_s"][i] for i in ok if rows["latency_s"][i] is not None])
        jobs = {rows["job_id"][i] for i in idx}
        ok_jobs = {rows["job_id"][i] for i in ok}
        auto = (learned.get(name) or {}).get("autopilot") or {}
        out.append(
            Endpoint(
                name=name,
                protocol=spec.get("protocol"),
                base_url=spec.get("base_url"),
                models=spec.get("models"),
                attempts=len(idx),
                jobs=len(jobs),
                jobs_succeeded=len(ok_jobs),
                success_rate=round(len(ok_jobs) / len(jobs), 4) if jobs else None,
                images=int(sum(rows["image_count"][i] or 0 for i in ok)),
                throttled=sum(1 for i in idx if rows["error_class"][i] == "rate_limit"),
                latency_p50_s=_pct(latencies, 50),
                latency_p95_s=_pct(latencies, 95),
                cost_usd=round(sum(rows["cost_usd"][i] or 0.0 for i in idx), 6),
                learned_rpm=auto.get("rpm"),
                learned_ipm=auto.get("ipm"),
                learned_concurrency=auto.get("concurrency"),
                taken_out=(learned.get(name) or {}).get("taken_out"),
            )
        )
    return tuple(out)
