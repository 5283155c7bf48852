"""One call that turns a run directory into the report's data (a JSON-ready dict).

The dict's top-level keys are the stable contract of ``batchgen report --format json``
(``batchgen/reports/schema.json``); every renderer (text, Markdown, HTML) reads only it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from batchgen.analyze import figures as F
from batchgen.analyze.endpoints import endpoint_figures
from batchgen.analyze.failures import failure_figures
from batchgen.analyze.images import DEFAULT_CHECKS, CheckConfig, check_images
from batchgen.analyze.load import load_manifest, read_columns
from batchgen.analyze.ratings import (
    DEFAULT_THRESHOLDS,
    LatencyBaseline,
    Thresholds,
    latency_baseline,
    rate_run,
)
from batchgen.analyze.recommend import recommend
from batchgen.analyze.savings import PriceLookup, default_price_lookup
from batchgen.analyze.variables import variable_figures
from batchgen.quality.figures import quality_figures
from batchgen.runlog.manifest import Manifest

REPORT_VERSION = 1
_DEFAULT = object()


def analyze_run(
    run_dir: Path | str,
    *,
    image_checks: bool = True,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    price_lookup: PriceLookup | object | None = _DEFAULT,
    check_config: CheckConfig = DEFAULT_CHECKS,
) -> dict[str, Any]:
    """Figures, ratings, recommendations and (optionally) image checks of one run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        msg = f"{run_dir}: no such run directory; pass the folder that holds run.json and log/"
        raise FileNotFoundError(msg)
    manifest = load_manifest(run_dir)
    fig = _figures(run_dir, manifest)
    # scores of `batchgen score` (scores/), joined to the log; None when never scored
    fig["quality"] = quality_figures(run_dir)
    fig["ratings"] = rate_run(fig, thresholds, _baseline(run_dir))
    lookup = (
        default_price_lookup(
            manifest.settings.get("prices"), batch=manifest.settings.get("via") == "batch"
        )
        if price_lookup is _DEFAULT
        else price_lookup
    )
    fig["recommendations"] = [r.to_dict() for r in recommend(fig, run_dir, lookup)]  # type: ignore[arg-type]
    fig["image_checks"] = (
        {"enabled": True, **check_images(run_dir, check_config)}
        if image_checks
        else {"enabled": False}
    )
    return fig


def _baseline(run_dir: Path) -> LatencyBaseline | None:
    """The usual latency of the models that answered in this run (successes only)."""

    table = read_columns(run_dir, ["status", "model", "quality", "size"])
    if table.num_rows == 0:
        return None
    ok = table.filter(pc.equal(table["status"], "ok"))
    groups = ok.group_by(["model", "quality", "size"]).aggregate([("status", "count")])
    return latency_baseline(
        [(r["model"], r["quality"], r["size"], r["status_count"]) for r in groups.to_pylist()]
    )


def _figures(run_dir: Path, manifest: Manifest) -> dict[str, Any]:
    """What the log, run.json and the run's files say, before ratings and advice (the keys
    in the JSON document's order)."""
    cols = F.Columns.from_table(read_columns(run_dir, F.CORE_COLUMNS))
    jobs = F.job_figures(cols, manifest)
    failed_ids = jobs.pop("_failed_ids")
    series = F.time_series(cols)
    throughput = F.throughput_figures(cols, manifest, series)
    return {
        "report_version": REPORT_VERSION,
        "run_dir": str(run_dir),
        "run_name": manifest.name,
        "settings": _public_settings(manifest.settings),
        "sessions": [
            {"session": s.session, "started_at": s.started_at, "ended_at": s.ended_at, "how": s.how}
            for s in manifest.sessions
        ],
        **jobs,
        **throughput,
        **F.latency_figures(cols),
        **F.rate_limit_figures(cols, throughput["active_s"]),
        **F.cost_figures(cols, throughput["images"]),
        "autopilot": _autopilot(manifest),
        "by_endpoint": endpoint_figures(run_dir, manifest),
        "possibly_billed_twice": F.possibly_billed_twice(cols, run_dir, manifest),
        **failure_figures(run_dir, failed_ids),
        # spec runs and edits: per-variable figures, input → output pairs ({} / [] else)
        **variable_figures(run_dir, manifest.job_file),
        "series": series,
    }


def _autopilot(manifest: Manifest) -> dict[str, Any] | None:
    """What the limiter learned in the latest session that recorded it (the limits it found
    are the freshest there), with the peak in flight and the 429s over every session: a short
    last session (one regenerated job) must not read as the run's peak."""
    recorded = [s for s in manifest.sessions if s.autopilot]
    if not recorded:
        return None
    last = recorded[-1]
    out: dict[str, Any] = {"session": last.session, **(last.autopilot or {})}
    if len(recorded) > 1:
        out["sessions"] = len(recorded)
        out["peak_inflight"] = max(int(s.autopilot.get("peak_inflight") or 0)
                                   for s in recorded if s.autopilot)  # fmt: skip
        out["throttled"] = sum(int(s.autopilot.get("throttled") or 0)
                               for s in recorded if s.autopilot)  # fmt: skip
    return out


def _public_settings(settings: dict[str, Any]) -> dict[str, Any]:
    # run.json never holds the key, but a report is shared more widely: drop anything key-like.
    return {
        k: v
        for k, v in settings.items()
        if "key" not in k.lower() and "secret" not in k.lower() and "token" not in k.lower()
    }
