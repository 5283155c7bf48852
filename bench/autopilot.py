"""Benchmarks of issue 10 ("Autopilot"): ``batchgen run`` with no --rpm, --ipm or --concurrency
against a simulator that enforces its limit server-side, in its own process. The client has to
find the limit by itself; each run is ≥ 60 s of work at the limit (``--quick``: ~10 s).

* ``auto-headers``: rpm 1200, x-ratelimit-* headers, 429s with only a tiny ``retry-after-ms``
  (OpenAI's "try again in 6ms").
* ``auto-noheaders`` / ``auto-noheaders-none``: rpm 1200, no x-ratelimit-* headers and a 429
  that names no limit; Retry-After in whole seconds / no Retry-After at all.
* ``auto-concurrency``: no rate limit, at most 24 requests in process; one more is refused at
  once with no hint. The ceiling is 24 / 0.3 s = 80 requests/s.
* ``auto-ipm``: 2400 images/min, jobs of n = 1, 2, 4 in turn.
* ``auto-moving``: rpm 1200, halved at 30 s, restored at 60 s (90 s run).

Latency 0.3 s ± 0.1 s (lognormal) everywhere, tiny images (so neither side is CPU-bound).
Besides the targets, every benchmark shows what the client says it learned: the
``autopilot`` record of the last session in run.json (``{"rpm", "ipm", "concurrency",
"source"}``), and the judged one against the simulator's true limit (within 10 %).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.clients import run_batchgen
from bench.jobfiles import write_jobs
from bench.metrics import Figure, Target, rate_limited_share, ratio, run_rate, window_rate
from bench.simproc import SimProcess

RPM = 1200.0
IPM = 2400.0
IPM_NS = (1, 2, 4)  # gpt-image-1 takes n from 1 to 10
CAP = 24
LATENCY_MEAN = 0.3
KNOBS: dict[str, Any] = {"latency_mean": LATENCY_MEAN, "latency_jitter": 0.1, "tiny": True}
LEARNED = ("rpm", "ipm", "concurrency")
# the moving limit: (seconds after the schedule's start, rpm); the windows where it is judged
MOVING = ((0.0, RPM), (30.0, RPM / 2), (60.0, RPM))
MOVING_WINDOWS = ((40.0, 60.0), (70.0, 90.0))
MOVING_END = 90.0
QUICK_SCALE = 1 / 6  # --quick: 15 s instead of 90


def _seconds(quick: bool) -> float:
    return 10.0 if quick else 62.0


# -- what the client recorded ------------------------------------------------------------------
def read_autopilot(run_dir: Path) -> dict[str, Any] | None:
    """What the last session's limiter learned, from the run's run.json: the client keeps it in
    ``sessions[-1]["summary"]["autopilot"]`` (``sessions[-1]["autopilot"]`` is read too, the
    shape first planned); None when there is none."""
    try:
        doc = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    sessions = doc.get("sessions") if isinstance(doc, dict) else None
    if not isinstance(sessions, list) or not sessions or not isinstance(sessions[-1], dict):
        return None
    last = sessions[-1]
    summary = last.get("summary")
    found = summary.get("autopilot") if isinstance(summary, dict) else None
    if not isinstance(found, dict):
        found = last.get("autopilot")
    return found if isinstance(found, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def learned_figures(
    autopilot: Mapping[str, Any] | None, judged: str, true_limit: float
) -> list[Figure]:
    """The learned rpm / ipm / concurrency (context), then the ``judged`` one over the true
    limit against both bounds of "within 10 %" (a missing record fails both)."""
    units = {"rpm": "/min", "ipm": "images/min", "concurrency": "in flight"}
    out = []
    for key in LEARNED:
        if autopilot is None:
            note = "no autopilot record in run.json (sessions[-1].summary)" if key == "rpm" else ""
        else:
            # the client names a source per kind ("rpm_source"); a single "source" also goes
            source = autopilot.get(f"{key}_source", autopilot.get("source"))
            note = f"source: {source}" if source is not None else ""
        value = _number(autopilot.get(key)) if autopilot else None
        out.append(Figure(f"learned {key}", value, None, units[key], note))
    value = _number(autopilot.get(judged)) if autopilot else None
    share = ratio(value, true_limit)
    out.append(
        Figure(
            f"learned {judged} / true, low bound",
            share,
            Target(">=", 0.9),
            "×",
            f"true {judged} {true_limit:g}",
        )
    )
    out.append(Figure(f"learned {judged} / true, high bound", share, Target("<=", 1.1), "×", ""))
    return out


# -- one run -----------------------------------------------------------------------------------
def _run(sim: SimProcess, jobfile: Path, run_dir: Path, jobs: int, seconds: float) -> dict:
    t0 = sim.reset()  # the schedule's start, on the timeline's clock
    # no --rpm/--ipm/--concurrency: the point. Exit 1 (jobs failed for good) and 3 (stopped
    # early) are figures here, not harness failures
    measured = run_batchgen(
        jobfile,
        sim.base_url,
        run_dir,
        concurrency=None,
        timeout_s=max(300.0, 6 * seconds),
        ok=(0, 1, 3),
    )
    return {
        "t0": t0,
        "stats": sim.stats(),
        "exit": measured.returncode,
        "wall_s": measured.wall_s,
        "cpu_s": measured.cpu_s,
        "not_done": jobs - _done_jobs(run_dir),
        "autopilot": read_autopilot(run_dir),
    }


def _done_jobs(run_dir: Path) -> int:
    from batchgen.runlog.state import DONE, job_states

    return job_states(run_dir).counts()[DONE]


def _common(run: dict[str, Any], jobs: int, share_bound: float | None) -> list[Figure]:
    target = Target("<=", share_bound) if share_bound is not None else None
    return [
        Figure(
            "jobs not done",
            float(run["not_done"]),
            Target("<=", 0),
            "jobs",
            f"{jobs:,} jobs; batchgen exit status {run['exit']}",
        ),
        # with no target the report would print a bare fraction: say what it is
        Figure(
            "429 share",
            rate_limited_share(run["stats"]),
            target,
            "" if target else "of requests",
            "server limit + concurrency refusals per request received",
        ),
    ]


def _details(run: dict[str, Any], *, images: bool = False) -> dict[str, Any]:
    stats = run["stats"]
    accepted = stats.get("accepted") or []
    t0 = run["t0"]
    span = accepted[-1][0] - t0 if accepted else 0.0
    return {
        "exit": run["exit"],
        "not_done": run["not_done"],
        "received": stats["received"],
        "outcomes": stats["outcomes"],
        "peak_in_flight": stats.get("peak_in_flight"),
        "first_request_after_reset_s": (stats["first_received"] - t0)
        if stats.get("first_received") is not None
        else None,
        "wall_s": run["wall_s"],
        "cpu_s": run["cpu_s"],
        "autopilot": run["autopilot"],
        # accepted per minute (images if images) in each 10 s after the reset
        "per_10s": [
            round(window_rate(accepted, t0 + s, t0 + s + 10.0, images=images))
            for s in range(0, int(span) + 10, 10)
        ],
    }


def _whole_run(stats: Mapping[str, Any], *, images: bool = False) -> float:
    return run_rate(stats.get("accepted") or [], stats.get("first_received"), images=images)


# -- the benchmarks ----------------------------------------------------------------------------
def bench_rpm(
    root: Path, *, quick: bool, name: str, share_bound: float, rate_bound: float, **knobs: Any
) -> tuple[list[Figure], dict[str, Any]]:
    """rpm 1200 enforced by the simulator, the client told nothing."""
    seconds = _seconds(quick)
    jobs = int(RPM * seconds / 60.0)
    jobfile = write_jobs(root / f"{name}.jsonl", jobs)
    with SimProcess(rpm=RPM, **KNOBS, **knobs) as sim:
        run = _run(sim, jobfile, root / f"{name}-run", jobs, seconds)
    rate = _whole_run(run["stats"]) / RPM
    setup = ", ".join(f"{k}={v}" for k, v in knobs.items())
    figures = [
        *_common(run, jobs, share_bound),
        Figure(
            "accepted rate / limit, whole run",
            rate,
            Target(">=", rate_bound),
            "×",
            f"limit {RPM:g}/min, {setup}; first request to last accepted (the bucket's "
            f"initial 1 s of rate adds ~{100 / seconds:.1f} %)",
        ),
        *learned_figures(run["autopilot"], "rpm", RPM),
    ]
    return figures, _details(run)


def bench_headers(root: Path, *, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    return bench_rpm(
        root,
        quick=quick,
        name="auto-headers",
        share_bound=0.02,
        rate_bound=0.93,
        retry_after_mode="ms",
    )


def bench_noheaders(root: Path, *, quick: bool, retry: str) -> tuple[list[Figure], dict[str, Any]]:
    return bench_rpm(
        root,
        quick=quick,
        name=f"auto-noheaders-{retry}",
        share_bound=0.03,
        rate_bound=0.90,
        ratelimit_headers=False,
        retry_after_mode=retry,
    )


def bench_concurrency(root: Path, *, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    seconds = _seconds(quick)
    ceiling = CAP / LATENCY_MEAN  # requests/s with every slot busy
    jobs = int(ceiling * seconds)
    jobfile = write_jobs(root / "auto-concurrency.jsonl", jobs)
    with SimProcess(max_concurrent=CAP, **KNOBS) as sim:
        run = _run(sim, jobfile, root / "auto-concurrency-run", jobs, seconds)
    per_s = _whole_run(run["stats"]) / 60.0
    figures = [
        *_common(run, jobs, 0.05),
        Figure(
            "throughput / (cap / mean latency)",
            per_s / ceiling,
            Target(">=", 0.85),
            "×",
            f"cap {CAP}, latency {LATENCY_MEAN:g} s: {ceiling:g} req/s; "
            f"peak in flight {run['stats'].get('peak_in_flight')}",
        ),
        *learned_figures(run["autopilot"], "concurrency", CAP),
    ]
    return figures, _details(run)


def bench_ipm(root: Path, *, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    seconds = _seconds(quick)
    per_job = sum(IPM_NS) / len(IPM_NS)
    jobs = int(IPM * seconds / 60.0 / per_job)
    jobfile = write_jobs(root / "auto-ipm.jsonl", jobs, n=IPM_NS)
    with SimProcess(ipm=IPM, **KNOBS) as sim:
        run = _run(sim, jobfile, root / "auto-ipm-run", jobs, seconds)
    rate = _whole_run(run["stats"], images=True) / IPM
    figures = [
        *_common(run, jobs, None),
        Figure(
            "accepted images / limit, whole run",
            rate,
            Target(">=", 0.90),
            "×",
            f"limit {IPM:g} images/min, n = {'/'.join(map(str, IPM_NS))} in turn",
        ),
        *learned_figures(run["autopilot"], "ipm", IPM),
    ]
    return figures, _details(run, images=True)


Pairs = tuple[tuple[float, float], ...]


def moving_plan(quick: bool) -> tuple[Pairs, Pairs, float]:
    """The schedule, the judged windows and the end, in seconds after the reset."""
    scale = QUICK_SCALE if quick else 1.0
    schedule = tuple((t * scale, rpm) for t, rpm in MOVING)
    windows = tuple((a * scale, b * scale) for a, b in MOVING_WINDOWS)
    return schedule, windows, MOVING_END * scale


def bench_moving(root: Path, *, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    schedule, windows, end = moving_plan(quick)
    # work for the whole schedule at its limits, and 5 % more so the last window stays busy
    edges = [t for t, _ in schedule] + [end]
    jobs = int(1.05 * sum(rpm * (edges[i + 1] - t) / 60.0 for i, (t, rpm) in enumerate(schedule)))
    jobfile = write_jobs(root / "auto-moving.jsonl", jobs)
    with SimProcess(rpm=RPM, limit_schedule=[list(p) for p in schedule], **KNOBS) as sim:
        run = _run(sim, jobfile, root / "auto-moving-run", jobs, end)
    accepted, t0 = run["stats"].get("accepted") or [], run["t0"]
    figures = _common(run, jobs, 0.05)
    for a, b in windows:
        limit = [rpm for t, rpm in schedule if t <= a][-1]
        rate = window_rate(accepted, t0 + a, t0 + b) / limit
        figures.append(
            Figure(
                f"rate / limit in {a:.3g}–{b:.3g} s",
                rate,
                Target(">=", 0.85),
                "×",
                f"limit {limit:g}/min there; schedule "
                + ", ".join(f"{t:.3g} s: {r:g}" for t, r in schedule)
                + " after the reset",
            )
        )
    figures += learned_figures(run["autopilot"], "rpm", schedule[-1][1])
    return figures, _details(run)
