"""One call that turns a run directory into its report: a ``RunReport`` (batchgen.analyze.model),
built section by section by the analyzers.

``RunReport.to_dict()`` is the stable contract of ``batchgen report --format json``
(``batchgen/reports/schema.json``); every renderer (text, Markdown, HTML) reads the sections.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from batchgen.analyze import figures as F
from batchgen.analyze.cost import cost_figures, possibly_billed_twice
from batchgen.analyze.endpoints import endpoint_figures
from batchgen.analyze.failures import failure_figures
from batchgen.analyze.images import DEFAULT_CHECKS, CheckConfig, check_images
from batchgen.analyze.load import load_manifest, read_columns
from batchgen.analyze.model import ImageChecks, RunReport
from batchgen.analyze.model import Session as SessionFigures
from batchgen.analyze.quality import quality_figures
from batchgen.analyze.ratings import (
    DEFAULT_THRESHOLDS,
    LatencyBaseline,
    Thresholds,
    latency_baseline,
    rate_run,
)
from batchgen.analyze.recommend import recommend
from batchgen.analyze.savings import PriceLookup, default_price_lookup
from batchgen.analyze.section import Json
from batchgen.analyze.variables import variable_figures
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
) -> RunReport:
    """Figures, ratings, recommendations and (optionally) image checks of one run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        msg = f"{run_dir}: no such run directory; pass the folder that holds run.json and log/"
        raise FileNotFoundError(msg)
    manifest = load_manifest(run_dir)
    checks = check_images(run_dir, check_config) if image_checks else ImageChecks(enabled=False)
    report = _figures(run_dir, manifest, thresholds, checks)
    lookup = (
        default_price_lookup(
            manifest.settings.get("prices"), batch=manifest.settings.get("via") == "batch"
        )
        if price_lookup is _DEFAULT
        else price_lookup
    )
    advice = recommend(report, run_dir, lookup)  # type: ignore[arg-type]
    return replace(report, recommendations=tuple(advice))


def _baseline(run_dir: Path, manifest: Manifest) -> LatencyBaseline | None:
    """The usual latency of the models that answered in this run (successes only), scaled
    by the simulator's time scale when the run replayed the models' times faster."""

    table = read_columns(run_dir, ["status", "model", "quality", "size"])
    if table.num_rows == 0:
        return None
    ok = table.filter(pc.equal(table["status"], "ok"))
    groups = (
        ok.group_by(["model", "quality", "size"])
        .aggregate([("status", "count")])
        .sort_by([("model", "ascending"), ("quality", "ascending"), ("size", "ascending")])
    )
    return latency_baseline(
        [(r["model"], r["quality"], r["size"], r["status_count"]) for r in groups.to_pylist()],
        time_scale=_sim_time_scale(manifest),
    )


def _sim_time_scale(manifest: Manifest) -> float:
    """``--sim-time-scale`` of a simulator run (run.json's settings), 1.0 otherwise."""
    settings = manifest.settings
    sim = settings.get("sim") if settings.get("provider") == "sim" else None
    scale = sim.get("sim_time_scale") if isinstance(sim, dict) else None
    if isinstance(scale, int | float) and not isinstance(scale, bool) and scale > 0:
        return float(scale)
    return 1.0


def _figures(
    run_dir: Path, manifest: Manifest, thresholds: Thresholds, checks: ImageChecks
) -> RunReport:
    """What the log, run.json and the run's files say, with the ratings and the image
    checks; the recommendations, computed from it, are left empty."""
    cols = F.Columns.from_table(read_columns(run_dir, F.CORE_COLUMNS))
    jobs = F.job_figures(cols, manifest)
    series = F.time_series(cols)
    throughput = F.throughput_figures(cols, manifest, series)
    latency = F.latency_figures(cols)
    limited = F.rate_limit_figures(cols, throughput.active_s)
    cost = cost_figures(cols, throughput.images)
    failures = failure_figures(run_dir, jobs.failed_ids)
    # spec runs and edits: per-variable figures, input → output pairs ({} / () else)
    variables = variable_figures(run_dir, manifest.job_file)
    ratings = rate_run(
        latency_p95_s=latency.latency_s.p95,
        success_rate=jobs.success_rate,
        cost_per_image_usd=cost.cost_per_image_usd,
        thresholds=thresholds,
        baseline=_baseline(run_dir, manifest),
    )
    return RunReport(
        report_version=REPORT_VERSION,
        run_dir=str(run_dir),
        run_name=manifest.name,
        settings=_public_settings(manifest.settings),
        sessions=tuple(
            SessionFigures(
                session=s.session, started_at=s.started_at, ended_at=s.ended_at, how=s.how
            )
            for s in manifest.sessions
        ),
        jobs_total=jobs.jobs_total,
        jobs_succeeded=jobs.jobs_succeeded,
        jobs_failed=jobs.jobs_failed,
        jobs_failed_by_class=jobs.jobs_failed_by_class,
        jobs_pending=jobs.jobs_pending,
        success_rate=jobs.success_rate,
        completion=jobs.completion,
        attempts=jobs.attempts,
        attempts_ok=jobs.attempts_ok,
        attempt_success_rate=jobs.attempt_success_rate,
        retries_per_job=jobs.retries_per_job,
        images=throughput.images,
        images_requested=throughput.images_requested,
        active_s=throughput.active_s,
        images_per_min=throughput.images_per_min,
        images_per_min_peak=throughput.images_per_min_peak,
        attempts_per_min=throughput.attempts_per_min,
        latency_s=latency.latency_s,
        wait_s=latency.wait_s,
        latency_histogram=latency.latency_histogram,
        rate_limited=limited.rate_limited,
        rate_limited_share=limited.rate_limited_share,
        paused_s_approx=limited.paused_s_approx,
        paused_note=limited.paused_note,
        accepted_rpm=limited.accepted_rpm,
        cost_usd_total=cost.cost_usd_total,
        cost_per_image_usd=cost.cost_per_image_usd,
        cost_wasted_usd=cost.cost_wasted_usd,
        cost_by_group=cost.cost_by_group,
        cost_by_source=cost.cost_by_source,
        cost_unknown_rows=cost.cost_unknown_rows,
        cost_note=cost.cost_note,
        autopilot=_autopilot(manifest),
        by_endpoint=endpoint_figures(run_dir, manifest),
        possibly_billed_twice=possibly_billed_twice(cols, run_dir, manifest),
        errors=failures.errors,
        skipped=failures.skipped,
        error_details=failures.error_details,
        failed_jobs=failures.failed_jobs,
        by_variable=variables.by_variable,
        edit_pairs=variables.edit_pairs,
        series=series,
        # scores of `batchgen score` (scores/), joined to the log; None when never scored
        quality=quality_figures(run_dir),
        ratings=ratings,
        recommendations=(),
        image_checks=checks,
    )


def _autopilot(manifest: Manifest) -> dict[str, Json] | None:
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
        out["peak_inflight"] = max(
            int(s.autopilot.get("peak_inflight") or 0) for s in recorded if s.autopilot
        )
        out["throttled"] = sum(
            int(s.autopilot.get("throttled") or 0) for s in recorded if s.autopilot
        )
    return out


def _public_settings(settings: dict[str, Any]) -> dict[str, Any]:
    # run.json never holds the key, but a report is shared more widely: drop anything key-like.
    return {
        k: v
        for k, v in settings.items()
        if "key" not in k.lower() and "secret" not in k.lower() and "token" not in k.lower()
    }
