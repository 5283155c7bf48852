"""Benchmarks 1 and 2: how close ``batchgen run`` gets to the provider's limit without
tripping it, with the limit given right (--rpm R, --ipm I) and given too high (--rpm 2R), where
the server's limit also rises mid-run.

The simulator enforces its limit with smooth token buckets and answers with latency
0.3 s ± 0.1 s; accepted requests come from its own timeline (time.monotonic, which is
CLOCK_MONOTONIC and so comparable across processes on Linux). Each run lasts ≥ 60 s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.clients import run_batchgen
from bench.jobfiles import write_jobs
from bench.metrics import Figure, Target, rate_limited_share, window_rate
from bench.simproc import SimProcess

RPM = 1200.0  # 20 requests/s: enough events in a minute for a ±1% figure
IPM = 2400.0
IPM_N = 4
LATENCY = {"latency_mean": 0.3, "latency_jitter": 0.1}
RAISE_AT_S = 60.0  # misconfigured run: the server's limit rises here ...
RAISED_RPM = 1.5 * RPM  # ... to this
RECOVERY_WINDOW = (75.0, 95.0)  # seconds after the reset, where the raised rate is measured


def _run(sim: SimProcess, jobfile: Path, run_dir: Path, extra: list[str]) -> tuple[dict, float]:
    sim.reset()
    t0 = time.monotonic()
    # exit 1 (jobs that ran out of attempts on 429s) is a figure here, not a harness failure
    measured = run_batchgen(jobfile, sim.base_url, run_dir, extra=extra, timeout_s=300, ok=(0, 1))
    stats = sim.stats()
    failed = _failed_jobs(run_dir)
    return {
        "stats": stats,
        "wall_s": measured.wall_s,
        "cpu_s": measured.cpu_s,
        "failed_jobs": failed,
    }, t0


def _failed_jobs(run_dir: Path) -> int:
    from batchgen.runlog.state import job_states

    counts = job_states(run_dir).counts()
    return counts["failed"] + counts["retryable_failed"]


def bench_rpm(root: Path, seconds: float = 62.0) -> tuple[list[Figure], dict[str, Any]]:
    jobs = int(RPM * seconds / 60.0)
    jobfile = write_jobs(root / "rpm.jsonl", jobs)
    with SimProcess(rpm=RPM, **LATENCY) as sim:
        run, _ = _run(sim, jobfile, root / "rpm-run", ["--rpm", f"{RPM:g}"])
    stats = run["stats"]
    accepted = stats["accepted"]
    span = accepted[-1][0] - accepted[0][0] if accepted else 0.0
    note = f"R = {RPM:g}/min, {jobs:,} jobs over {span:.0f} s"
    figures = [
        Figure(
            "--rpm R: accepted rate / R", window_rate(accepted) / RPM, Target(">=", 0.98), "×", note
        ),
        Figure("--rpm R: 429 share", rate_limited_share(stats), Target("<=", 0.005), "", ""),
    ]
    return figures, _details(run, span)


def bench_ipm(root: Path, seconds: float = 62.0) -> tuple[list[Figure], dict[str, Any]]:
    jobs = int(IPM * seconds / 60.0 / IPM_N)
    jobfile = write_jobs(root / "ipm.jsonl", jobs, n=IPM_N)
    with SimProcess(ipm=IPM, **LATENCY) as sim:
        run, _ = _run(sim, jobfile, root / "ipm-run", ["--ipm", f"{IPM:g}"])
    stats = run["stats"]
    accepted = stats["accepted"]
    span = accepted[-1][0] - accepted[0][0] if accepted else 0.0
    note = f"I = {IPM:g} images/min, n = {IPM_N}, {jobs:,} jobs over {span:.0f} s"
    figures = [
        Figure(
            "--ipm I: accepted images / I",
            window_rate(accepted, images=True) / IPM,
            Target(">=", 0.98),
            "×",
            note,
        ),
        Figure("--ipm I: 429 share", rate_limited_share(stats), Target("<=", 0.005), "", ""),
    ]
    return figures, _details(run, span)


def bench_misconfigured(root: Path, *, quick: bool = False) -> tuple[list[Figure], dict[str, Any]]:
    raise_at, window = (10.0, (18.0, 28.0)) if quick else (RAISE_AT_S, RECOVERY_WINDOW)
    end = window[1] + 2.0
    # enough jobs to keep the pool busy past the recovery window at the raised rate
    jobs = int(RPM * raise_at / 60.0 + RAISED_RPM * (end - raise_at) / 60.0)
    jobfile = write_jobs(root / "misconfigured.jsonl", jobs)
    schedule = [[0.0, RPM], [raise_at, RAISED_RPM]]
    with SimProcess(rpm=RPM, limit_schedule=schedule, **LATENCY) as sim:
        run, t0 = _run(sim, jobfile, root / "misconf-run", ["--rpm", f"{2 * RPM:g}"])
    stats = run["stats"]
    accepted = stats["accepted"]
    first = accepted[0][0] if accepted else t0
    before = window_rate(accepted, first, t0 + raise_at)
    after = window_rate(accepted, t0 + window[0], t0 + window[1])
    span = accepted[-1][0] - accepted[0][0] if accepted else 0.0
    figures = [
        Figure(
            "--rpm 2R: accepted rate / R",
            before / RPM,
            Target(">=", 0.90),
            "×",
            f"R = {RPM:g}/min, first {raise_at:g} s",
        ),
        Figure(
            "--rpm 2R: 429 share", rate_limited_share(stats), Target("<=", 0.05), "", "whole run"
        ),
        Figure(
            "--rpm 2R: after the limit rises, rate / new limit",
            after / RAISED_RPM,
            Target(">=", 0.90),
            "×",
            f"limit {RAISED_RPM:g}/min from {raise_at:g} s, "
            f"measured over {window[0]:g}–{window[1]:g} s",
        ),
    ]
    details = _details(run, span)
    details["per_10s"] = [
        round(window_rate(accepted, t0 + s, t0 + s + 10.0)) for s in range(0, int(span) + 10, 10)
    ]
    return figures, details


def _details(run: dict[str, Any], span: float) -> dict[str, Any]:
    stats = run["stats"]
    return {
        "span_s": span,
        "received": stats["received"],
        "outcomes": stats["outcomes"],
        "wall_s": run["wall_s"],
        "cpu_s": run["cpu_s"],
        "failed_jobs": run["failed_jobs"],
    }
