"""Analyzers on synthetic logs: every figure is recomputed here from the raw rows with plain
Python and numpy, independently of the analyzer's columnar code."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from batchgen.analyze import Thresholds, analyze_run, rate_run
from batchgen.analyze.model import Advice, RunReport
from batchgen.analyze.ratings import rate_at_least, rate_at_most
from batchgen.money import load_prices
from batchgen.testing.synthetic import Faults, synthetic_log, table_from_rows, write_run

PENDING_CLASSES = {"auth", "quota", "budget", "cancelled"}
HEAVY = Faults(
    rate_limit=0.25,
    server=0.15,
    timeout=0.08,
    content_policy=0.03,
    never_taken=0.05,
    in_flight_at_crash=0.02,
    unknown_cost=0.05,
)
CLEAN = Faults(
    rate_limit=0,
    server=0,
    timeout=0,
    content_policy=0,
    never_taken=0,
    in_flight_at_crash=0,
    unknown_cost=0,
)
MINI = (("gpt-image-1-mini", "low", "1024x1024", 0.005),)


def make(tmp_path: Path, jobs: int, faults: Faults, seed: int = 3, **kw) -> tuple[Path, list]:
    groups = kw.pop("groups", None)
    table = synthetic_log(jobs, faults=faults, seed=seed, **({"groups": groups} if groups else {}))
    run = write_run(tmp_path / f"run-{seed}", table, jobs=jobs, **kw)
    return run, table.to_pylist()


def expected(rows: list[dict], jobs_total: int, active_s: float) -> dict:
    """The figures by their definitions, row by row."""
    ok_jobs = {r["job_id"] for r in rows if r["status"] == "ok"}
    last_final: dict[str, dict] = {}
    for r in sorted((r for r in rows if r["final"]), key=lambda r: (r["session"], r["attempt"])):
        last_final[r["job_id"]] = r
    failed = {
        j: r["error_class"]
        for j, r in last_final.items()
        if j not in ok_jobs and r["status"] == "error" and r["error_class"] not in PENDING_CLASSES
    }
    sent = [r for r in rows if r["status"] in ("ok", "error")]
    ok = [r for r in rows if r["status"] == "ok"]
    lat = np.array([r["latency_s"] for r in ok])
    cost = [r["cost_usd"] or 0.0 for r in rows]
    images = sum(r["image_count"] for r in ok)
    per_job = Counter(r["job_id"] for r in sent)
    limited = sum(1 for r in sent if r["error_class"] == "rate_limit")
    return {
        "jobs_succeeded": len(ok_jobs),
        "jobs_failed": len(failed),
        "jobs_failed_by_class": dict(Counter(failed.values())),
        "jobs_pending": jobs_total - len(ok_jobs) - len(failed),
        "success_rate": len(ok_jobs) / (len(ok_jobs) + len(failed)),
        "attempts": len(sent),
        "attempt_success_rate": len(ok) / len(sent),
        "retries_mean": sum(per_job.values()) / len(per_job) - 1,
        "retries_max": max(per_job.values()) - 1,
        "latency": {f"p{p}": float(np.percentile(lat, p)) for p in (50, 90, 95, 99)}
        | {"max": float(lat.max()), "mean": float(lat.mean())},
        "images": images,
        "images_per_min": images / (active_s / 60),
        "rate_limited_share": limited / len(sent),
        "paused": sum(r["retry_after_s"] for r in sent if r["error_class"] == "rate_limit"),
        "accepted_rpm": (len(sent) - limited) / (active_s / 60),
        "cost_total": sum(cost),
        "cost_wasted": sum(c for c, r in zip(cost, rows, strict=False) if r["status"] != "ok"),
        "errors": dict(Counter(r["error_class"] for r in rows if r["status"] == "error")),
        "billed_twice": len({r["job_id"] for r in rows if r["error_code"] == "in_flight_at_crash"}),
        "unknown_cost": sum(1 for r in rows if r["cost_source"] == "unknown"),
    }


def active_seconds(run: Path) -> float:
    sessions = json.loads((run / "run.json").read_text())["sessions"]
    return sum(s["ended_at"] - s["started_at"] for s in sessions)


def test_figures_match_independent_computation(tmp_path):
    run, rows = make(tmp_path, 3000, HEAVY)
    fig = analyze_run(run, image_checks=False, price_lookup=None)
    want = expected(rows, 3000, active_seconds(run))

    assert want["jobs_failed"] > 20 and want["jobs_pending"] > 100  # the data exercises both
    assert fig.jobs_total == 3000
    for key in ("jobs_succeeded", "jobs_failed", "jobs_pending", "attempts", "images"):
        assert getattr(fig, key) == want[key], key
    assert fig.jobs_failed_by_class == want["jobs_failed_by_class"]
    assert fig.jobs_succeeded + fig.jobs_failed + fig.jobs_pending == 3000
    assert fig.success_rate == pytest.approx(want["success_rate"])
    assert fig.attempt_success_rate == pytest.approx(want["attempt_success_rate"])
    assert fig.retries_per_job.mean == pytest.approx(want["retries_mean"])
    assert fig.retries_per_job.max == want["retries_max"]
    assert fig.latency_s.to_dict() == pytest.approx(want["latency"])
    assert fig.images_per_min == pytest.approx(want["images_per_min"])
    assert fig.rate_limited_share == pytest.approx(want["rate_limited_share"])
    assert fig.paused_s_approx == pytest.approx(want["paused"])
    assert fig.accepted_rpm == pytest.approx(want["accepted_rpm"])
    assert fig.cost_usd_total == pytest.approx(want["cost_total"])
    assert fig.cost_per_image_usd == pytest.approx(want["cost_total"] / want["images"])
    assert fig.cost_wasted_usd == pytest.approx(want["cost_wasted"])
    assert fig.errors == want["errors"]
    assert fig.possibly_billed_twice == want["billed_twice"] > 0
    assert fig.cost_unknown_rows == want["unknown_cost"] > 0
    assert "lower bound" in fig.cost_note


def test_series_and_groups_add_up(tmp_path):
    run, rows = make(tmp_path, 1500, HEAVY, seed=5)
    fig = analyze_run(run, image_checks=False, price_lookup=None)
    series = fig.series
    assert sum(series.images) == fig.images
    assert sum(series.attempts) == fig.attempts
    assert sum(series.rate_limited) == fig.rate_limited
    assert sum(series.cost_usd) == pytest.approx(fig.cost_usd_total)
    assert max(series.images) * 60 / series.bin_s == pytest.approx(fig.images_per_min_peak)
    assert sum(g.images for g in fig.cost_by_group) == fig.images
    assert sum(g.cost_usd for g in fig.cost_by_group) == pytest.approx(fig.cost_usd_total)
    mini = next(g for g in fig.cost_by_group if g.model == "gpt-image-1-mini")
    want = sum(r["cost_usd"] or 0 for r in rows if r["model"] == "gpt-image-1-mini")
    assert mini.cost_usd == pytest.approx(want)
    assert sum(fig.latency_histogram.counts) == fig.attempts_ok


def test_error_details_use_the_taxonomy(tmp_path):
    from batchgen.errors import ErrorClass

    run, _ = make(tmp_path, 1000, HEAVY, seed=7)
    fig = analyze_run(run, image_checks=False, price_lookup=None)
    cp = fig.error_details["content_policy"]
    assert cp.diagnosis == ErrorClass.CONTENT_POLICY.diagnosis
    assert cp.remedy == ErrorClass.CONTENT_POLICY.remedy
    assert cp.messages[0].count == fig.errors["content_policy"]
    assert cp.samples and all((s.prompt or "").startswith("a watercolour fox") for s in cp.samples)
    failed_ids = {j.job_id for j in fig.failed_jobs}
    assert len(failed_ids) == min(fig.jobs_failed, 200)


def test_still_running_run_uses_last_attempt_as_session_end(tmp_path):
    table = synthetic_log(400, faults=CLEAN, seed=1)
    fin = table["finished_at"].cast("int64").to_numpy() / 1e6
    start = float(fin.min()) - 2
    run = write_run(
        tmp_path / "live",
        table,
        jobs=1000,
        sessions=[{"session": 1, "started_at": start, "ended_at": None, "how": None}],
    )
    fig = analyze_run(run, image_checks=False, price_lookup=None)
    assert fig.active_s == pytest.approx(float(fin.max()) - start)
    assert fig.jobs_pending == 600
    assert any(r.kind == "pending" and "600 pending" in r.message for r in fig.recommendations)


def test_empty_run_reports_everything_pending(tmp_path):
    run = write_run(tmp_path / "empty", table_from_rows([]), jobs=12, sessions=[])
    fig = analyze_run(run, image_checks=True, price_lookup=None)
    assert (fig.jobs_total, fig.jobs_pending, fig.attempts, fig.images) == (
        12,
        12,
        0,
        0,
    )
    assert fig.success_rate is None and fig.latency_s.p95 is None
    assert [r.kind for r in fig.recommendations] == ["pending"]
    assert fig.image_checks.checked == 0


def test_missing_run_dir_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run\.json and log/"):
        analyze_run(tmp_path / "nope")


# ---- ratings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (0.99, "excellent"),
        (0.98, "excellent"),
        (0.96, "good"),
        (0.90, "acceptable"),
        (0.87, "poor"),
        (0.5, "poor"),
        (None, None),
    ],
)
def test_success_rating(value, label):
    assert rate_at_least(value, Thresholds().success_rate) == label


@pytest.mark.parametrize(
    ("value", "label"),
    [(2.0, "excellent"), (3.0, "excellent"), (7.9, "good"), (15.0, "acceptable"), (15.1, "poor")],
)
def test_latency_rating_on_p95(value, label):
    assert rate_at_most(value, Thresholds().latency_p95_s) == label


def test_cost_gap_is_poor_and_thresholds_configurable():
    fig = {"latency_p95_s": 5.0, "success_rate": 0.97, "cost_per_image_usd": 0.08}
    ratings = rate_run(**fig)
    assert ratings["cost_per_image"].rating == "poor"
    assert ratings["response_time"].rating == "good"
    lenient = Thresholds(
        latency_p95_s=(6, 10, 20), success_rate=(0.9, 0.8, 0.7), cost_per_image_usd=(0.1, 0.2, 0.3)
    )
    ratings = rate_run(**fig, thresholds=lenient)
    assert [r.rating for r in ratings.values()] == ["excellent", "excellent", "excellent"]


# ---- recommendations ------------------------------------------------------------------------


def kinds(fig: RunReport) -> dict[str, Advice]:
    return {r.kind: r for r in fig.recommendations}


def test_clean_run_has_no_recommendations(tmp_path):
    run, _ = make(tmp_path, 500, CLEAN, groups=MINI)
    fig = analyze_run(run, image_checks=False)
    assert fig.recommendations == ()
    assert fig.jobs_succeeded == 500 and fig.rate_limited_share == 0


def test_many_429s_suggest_a_lower_rpm_from_the_accepted_rate(tmp_path):
    run, rows = make(
        tmp_path,
        2000,
        Faults(
            rate_limit=0.3,
            server=0,
            timeout=0,
            content_policy=0,
            never_taken=0,
            in_flight_at_crash=0,
            unknown_cost=0,
        ),
    )
    fig = analyze_run(run, image_checks=False, price_lookup=None)
    rec = kinds(fig)["rpm"]
    sent = [r for r in rows if r["status"] != "skipped"]
    accepted = sum(1 for r in sent if r["error_class"] != "rate_limit") / (active_seconds(run) / 60)
    assert rec.evidence["suggested_rpm"] == math.floor(0.9 * accepted)
    assert f"--rpm {math.floor(0.9 * accepted)}" in rec.message
    assert rec.evidence["current_rpm"] == 600

    # the same run with a 2% share: below the threshold, nothing to change
    run2, _ = make(
        tmp_path,
        2000,
        Faults(
            rate_limit=0.02,
            server=0,
            timeout=0,
            content_policy=0,
            never_taken=0,
            in_flight_at_crash=0,
            unknown_cost=0,
        ),
        seed=4,
    )
    assert "rpm" not in kinds(analyze_run(run2, image_checks=False, price_lookup=None))


def test_timeouts_suggest_a_timeout_from_p99(tmp_path):
    run, _ = make(
        tmp_path,
        1500,
        Faults(
            rate_limit=0,
            server=0,
            timeout=0.1,
            content_policy=0,
            never_taken=0,
            in_flight_at_crash=0,
            unknown_cost=0,
        ),
        settings={"rpm": 600, "timeout": 5},
    )
    fig = analyze_run(run, image_checks=False, price_lookup=None)
    rec = kinds(fig)["timeout"]
    p99 = fig.latency_s.p99
    assert rec.evidence["suggested_timeout_s"] == max(math.ceil(1.5 * p99), math.ceil(7.5))
    assert rec.evidence["timeouts"] == fig.errors["timeout"]


def test_cheaper_option_uses_the_price_table(tmp_path):
    groups = (("gpt-image-1", "high", "1024x1024", 0.17),)
    run, _ = make(tmp_path, 300, CLEAN, groups=groups)
    fig = analyze_run(run, image_checks=False)
    rec = kinds(fig)["cheaper"]
    entry = {m: load_prices().get(m) for m in ("gpt-image-1", "gpt-image-1-mini")}

    def price(model: str, quality: str) -> float:
        e = entry[model]
        return e.image_output_usd(e.image_output_tokens(quality, "1024x1024"))

    now = price("gpt-image-1", "high")
    best = max((now - price("gpt-image-1", "medium")), (now - price("gpt-image-1-mini", "high")))
    assert rec.evidence["to"]["saving_usd"] == pytest.approx(best * 300)
    assert "gpt-image-1" in rec.message and "saving $" in rec.message
    # and without a price table the recommendation is simply absent
    assert "cheaper" not in kinds(analyze_run(run, image_checks=False, price_lookup=None))


def test_failures_crashes_and_stops_are_recommended_on(tmp_path):
    run, rows = make(tmp_path, 2000, HEAVY, seed=11)
    fig = analyze_run(run, image_checks=False, price_lookup=None)
    k = kinds(fig)
    assert k["content_policy"].evidence["jobs"] == fig.jobs_failed_by_class["content_policy"]
    listed = {p["job_id"] for p in k["content_policy"].evidence["prompts"]}
    assert listed and all(
        any(r["job_id"] == j and r["error_class"] == "content_policy" for r in rows) for j in listed
    )
    assert k["billed_twice"].evidence["jobs"] == fig.possibly_billed_twice
    assert f"batchgen resume {run}" in k["pending"].message
    assert "server" in k  # 15% server errors is above the 5% share worth a word

    stop = [
        {
            "run_id": "t",
            "session": 1,
            "job_id": "j1",
            "attempt": 1,
            "status": "error",
            "final": True,
            "error_class": "auth",
            "http_status": 401,
            "prompt": "p",
        },
        {
            "run_id": "t",
            "session": 1,
            "job_id": "j2",
            "attempt": 0,
            "status": "skipped",
            "final": True,
            "error_class": "auth",
            "prompt": "q",
        },
    ]
    run2 = write_run(
        tmp_path / "auth",
        table_from_rows(stop),
        jobs=5,
        sessions=[{"session": 1, "started_at": 1.0, "ended_at": 2.0, "how": "stopped_auth"}],
    )
    fig2 = analyze_run(run2, image_checks=False, price_lookup=None)
    from batchgen.errors import ErrorClass

    # the remedy, with this run's directory where it says RUN_DIR
    assert kinds(fig2)["stop_auth"].message == ErrorClass.AUTH.remedy.replace("RUN_DIR", str(run2))
    assert (fig2.jobs_failed, fig2.jobs_pending) == (0, 5)


def test_reads_only_complete_files(tmp_path):
    run, rows = make(tmp_path, 800, HEAVY, seed=2)
    assert any(p.name.startswith(".") for p in (run / "log").iterdir())
    fig = analyze_run(run, image_checks=False, price_lookup=None)
    assert fig.attempts == sum(1 for r in rows if r["status"] != "skipped")


def test_hundred_thousand_rows_is_quick(tmp_path):
    """The full-size figure (1M rows) is measured by `python -m batchgen.testing.synthetic`;
    here a tenth of it keeps the suite fast and still catches a per-row Python loop."""
    table = synthetic_log(100_000, faults=HEAVY, seed=9)
    run = write_run(tmp_path / "big", table, jobs=100_000)
    t0 = time.perf_counter()
    fig = analyze_run(run, image_checks=False, price_lookup=None)
    assert time.perf_counter() - t0 < 5.0
    assert fig.attempts > 100_000


def test_settings_nested_under_pool_as_run_json_keeps_them(tmp_path):
    run, _ = make(
        tmp_path,
        1500,
        Faults(
            rate_limit=0.3,
            server=0,
            timeout=0.1,
            content_policy=0,
            never_taken=0,
            in_flight_at_crash=0,
            unknown_cost=0,
        ),
        settings={"pool": {"rpm": 120, "timeout": 200.0}, "provider": "sim"},
    )
    k = kinds(analyze_run(run, image_checks=False, price_lookup=None))
    assert k["rpm"].evidence["current_rpm"] == 120
    assert k["timeout"].evidence["current_timeout_s"] == 200.0
    assert k["timeout"].evidence["suggested_timeout_s"] == 300  # p99 sits under the deadline


def test_run_without_manifest_still_reports_from_the_log(tmp_path):
    """A first session killed before run.json was complete: the log alone still reports."""
    run, rows = make(tmp_path, 300, HEAVY, seed=13)
    (run / "run.json").unlink()
    fig = analyze_run(run, image_checks=False, price_lookup=None)
    seen = {r["job_id"] for r in rows}
    assert fig.jobs_total == len(seen)
    assert fig.attempts == sum(1 for r in rows if r["status"] != "skipped")
    assert fig.active_s > 0 and fig.images_per_min > 0


def _slow_run(
    tmp_path: Path, model: str, quality: str, scale: float = 1.0, settings: dict | None = None
) -> RunReport:
    """A clean run of ``model`` whose successes took gpt-image-1-like times (p95 ~35 s),
    × ``scale``."""
    import pyarrow as pa

    groups = ((model, quality, "1024x1024", 0.04),)
    table = synthetic_log(200, faults=CLEAN, seed=5, groups=groups)
    latency = table["latency_s"].to_numpy() * 5.0 * scale  # lognormal around 20 s
    finished = table["finished_at"].cast(pa.int64()).to_numpy()
    started = pa.array(finished - np.round(latency * 1e6).astype("int64"))
    for name, column in (("latency_s", pa.array(latency)), ("started_at", started)):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, column.cast(table.schema.field(i).type))
    run = write_run(tmp_path / f"run-{model}-{quality}-{scale}", table, jobs=200, settings=settings)
    return analyze_run(run, image_checks=False)


def test_a_gpt_image_1_run_at_its_usual_latency_is_not_poor(tmp_path: Path) -> None:
    """Issue 21, acceptance 6, through the log: the report reads each success's model and
    quality and rates the p95 against what is usual for them (batchgen.provider.typical)."""
    gpt = _slow_run(tmp_path, "gpt-image-1", "medium")
    p95 = gpt.latency_s.p95
    assert 25.0 < p95 < 60.0, p95  # "poor" on the fixed 3 / 8 / 15 s scale
    rated = gpt.ratings["response_time"]
    assert rated.rating in ("excellent", "good"), rated
    assert "gpt-image-1 at medium quality" in (rated.baseline or "")
    # the same times at low quality (usually ~12 s) or from a FLUX endpoint are slow
    assert _slow_run(tmp_path, "gpt-image-1", "low").ratings["response_time"].rating in (
        "acceptable",
        "poor",
    )
    assert _slow_run(tmp_path, "flux-pro-1.1", "").ratings["response_time"].rating == "poor"


def test_a_simulator_run_at_a_scaled_time_is_rated_against_the_scaled_usual_times(
    tmp_path: Path,
) -> None:
    """The demo replays the models' times at × 0.05: its report rates the p95 against the
    usual times × 0.05 and says so, not against the real ones (where any p95 of a scaled run
    is "excellent", and one 20× slower than usual would be too)."""
    sim = {"provider": "sim", "sim": {"sim_model_latency": True, "sim_time_scale": 0.05}}
    usual = _slow_run(tmp_path, "gpt-image-1", "medium", 0.05, sim).ratings["response_time"]
    assert usual.rating in ("excellent", "good"), usual
    assert "× 0.05, the simulator's time scale" in (usual.baseline or "")
    assert usual.bounds[2] < 5.0, usual.bounds  # the scaled "acceptable" bound, not ~78 s
    # twenty times slower than the scaled usual: poor, where the unscaled bounds called it fine
    slow = _slow_run(tmp_path, "gpt-image-1", "medium", 1.0, sim).ratings["response_time"]
    assert slow.rating == "poor", slow
    # the same times from a real endpoint (no simulator in run.json) keep the real baseline
    real = _slow_run(tmp_path, "gpt-image-1", "medium", 1.0).ratings["response_time"]
    assert real.rating in ("excellent", "good") and "time scale" not in (real.baseline or "")
