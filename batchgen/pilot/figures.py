"""The pilot's table: per setting, from the run's log and scores — mean score (95% bootstrap
interval), the share of images at or above the bar (95% Wilson interval, and the one-sided
lower bound the choice reads), cost per image, expected cost per passing image, latency, and
the whole job file projected."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from batchgen.money.spent import judging_usd
from batchgen.pilot.plan import PilotPlan
from batchgen.pilot.stats import (
    Candidate,
    Choice,
    bootstrap_mean,
    choose,
    per_passing,
    wilson,
    wilson_lower,
    z_two_sided,
)
from batchgen.quality.store import read_scores
from batchgen.runlog.reader import read_log


@dataclass(frozen=True, slots=True)
class SettingFigures:
    label: str
    slug: str
    jobs: int  # sampled jobs under this setting
    jobs_ok: int  # with saved images
    images: int  # images saved
    scored: int  # images with a score
    passed: int  # scored at or above the bar
    mean_score: float | None
    mean_ci: tuple[float, float] | None  # 95% bootstrap
    pass_rate: float | None
    pass_ci: tuple[float, float] | None  # 95% Wilson
    pass_lower: float  # one-sided Wilson lower bound at the pilot's confidence
    spent_usd: float  # every attempt of this setting's jobs
    cost_per_image: float | None
    cost_per_passing: float | None
    latency_p50_s: float | None
    projected_cost_usd: float | None  # the job file's images × cost per image
    projected_cost_passing_usd: float | None  # × cost per passing image (regenerations)
    projected_time_s: float | None  # at the pilot's observed concurrency


@dataclass(frozen=True, slots=True)
class PilotFigures:
    settings: list[SettingFigures]
    choice: Choice
    images_cost_usd: float  # what the pilot's images cost
    judge_cost_usd: float  # what scoring them cost
    mean_in_flight: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "settings": [asdict(s) for s in self.settings],
            "chosen": self.choice.chosen,
            "closest": self.choice.closest,
            "reason": self.choice.reason,
            "images_cost_usd": self.images_cost_usd,
            "judge_cost_usd": self.judge_cost_usd,
            "mean_in_flight": self.mean_in_flight,
        }


def pilot_figures(run_dir: Path | str, plan: PilotPlan, scorer: str | None) -> PilotFigures:
    cols = ["job_id", "status", "cost_usd", "latency_s", "image_paths", "started_at", "finished_at"]
    rows = read_log(run_dir, cols).to_pylist()
    scores: dict[str, float] = {}
    for r in read_scores(run_dir, scorer).to_pylist():
        if r["status"] == "ok" and r["score"] is not None:
            scores[r["image_path"]] = float(r["score"])
    by_slug: dict[str, dict[str, Any]] = {
        s["slug"]: {"spent": 0.0, "ok_jobs": set(), "images": [], "lat": []} for s in plan.settings
    }
    span_lo, span_hi, busy = math.inf, -math.inf, 0.0
    for r in rows:
        owner = plan.pilot_jobs.get(r["job_id"])
        if owner is None:
            continue
        acc = by_slug[owner[1]]
        acc["spent"] += r["cost_usd"] or 0.0
        if r["status"] != "ok" or not r["image_paths"]:
            continue
        acc["ok_jobs"].add(r["job_id"])
        acc["images"].extend(p for p in r["image_paths"] if "~r" not in p)
        if r["latency_s"] is not None:
            acc["lat"].append(float(r["latency_s"]))
            busy += float(r["latency_s"])
            if r["started_at"] is not None and r["finished_at"] is not None:
                span_lo = min(span_lo, r["started_at"].timestamp())
                span_hi = max(span_hi, r["finished_at"].timestamp())
    in_flight = busy / (span_hi - span_lo) if span_hi > span_lo and busy else None
    figures = [_one(s, by_slug[s["slug"]], scores, plan, in_flight) for s in plan.settings]
    candidates = [
        Candidate(f.label, f.scored, f.passed, f.cost_per_image) for f in figures if f.scored
    ]
    choice = choose(candidates, plan.target, plan.confidence)
    if not candidates:
        choice = Choice(None, None, choice.lower_bounds, _why_none(figures, Path(run_dir)))
    images_cost = sum(a["spent"] for a in by_slug.values())
    return PilotFigures(figures, choice, images_cost, judging_usd(run_dir), in_flight)


def _why_none(figures: list[SettingFigures], run_dir: Path) -> str:
    """Why no setting could be judged (every one was tried: "no setting was tried" said
    otherwise, and the table's advice, a larger sample, helps none of these)."""
    if not any(f.jobs_ok for f in figures):
        return (
            "no image came back under any setting: every sampled request failed "
            f"(`batchgen report {run_dir}` says why); fix those prompts or the settings, "
            "then run the pilot again"
        )
    return (
        "no image was scored: run the same pilot command again to score them "
        f"(`batchgen report {run_dir}` shows the scoring's failures)"
    )


def _one(
    setting: dict[str, Any],
    acc: dict[str, Any],
    scores: dict[str, float],
    plan: PilotPlan,
    in_flight: float | None,
) -> SettingFigures:
    images: list[str] = acc["images"]
    values = [scores[p] for p in images if p in scores]
    passed = sum(1 for v in values if v >= plan.bar)
    n = len(values)
    mean = statistics.fmean(values) if values else None
    cost_each = acc["spent"] / len(images) if images else None
    each_passing = per_passing(cost_each, passed, n)
    lat: list[float] = acc["lat"]
    p50 = statistics.median(lat) if lat else None
    jobs = sum(1 for j, slug in plan.pilot_jobs.values() if slug == setting["slug"])
    time_s = None
    if lat and in_flight:
        time_s = plan.jobs_total * statistics.fmean(lat) / in_flight
    return SettingFigures(
        label=setting["label"],
        slug=setting["slug"],
        jobs=jobs,
        jobs_ok=len(acc["ok_jobs"]),
        images=len(images),
        scored=n,
        passed=passed,
        mean_score=mean,
        mean_ci=bootstrap_mean(values) if values else None,
        pass_rate=passed / n if n else None,
        pass_ci=wilson(passed, n, z_two_sided(0.95)) if n else None,
        pass_lower=wilson_lower(passed, n, plan.confidence),
        spent_usd=acc["spent"],
        cost_per_image=cost_each,
        cost_per_passing=each_passing,
        latency_p50_s=p50,
        projected_cost_usd=None if cost_each is None else cost_each * plan.images_total,
        projected_cost_passing_usd=None
        if each_passing is None
        else each_passing * plan.images_total,
        projected_time_s=time_s,
    )
