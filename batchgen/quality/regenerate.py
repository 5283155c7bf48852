"""Regenerate the weak ones: ``batchgen resume RUN_DIR --regenerate-below S [--max-rounds R]``.

A job is weak when its best scored image scores under S. Each round is one session of the
images pool over the weak jobs only, with their images saved under a round tag
(``<job_id>~r<round>_<i>.<ext>``: nothing is overwritten, nothing deleted), then those new
images are scored with the scorer of the last ``score`` (or the one given again). Rounds stop
after R, when no job is weak, or when --max-cost (the run directory's total: images and
scoring) leaves nothing for the next request. ``scores/best.json`` marks each job's best image.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from batchgen.quality.score import image_round
from batchgen.quality.store import read_scores, save_best


def best_per_job(run_dir: Path, scorer: str) -> dict[str, dict[str, Any]]:
    """job id → its best image by ``scorer`` (ties: the earlier round); ok verdicts only."""
    t = read_scores(run_dir, scorer)
    best: dict[str, dict[str, Any]] = {}
    for r in t.to_pylist():
        if r["status"] != "ok" or r["score"] is None:
            continue
        cur = best.get(r["job_id"])
        if (
            cur is None
            or r["score"] > cur["score"]
            or (r["score"] == cur["score"] and (r["round"] or 1) < cur["round"])
        ):
            best[r["job_id"]] = {
                "image_path": r["image_path"], "score": r["score"], "round": r["round"] or 1,
            }  # fmt: skip
    return best


def weakest(run_dir: Path, scorer: str, k: int) -> list[dict[str, Any]]:
    rows = [r for r in read_scores(run_dir, scorer).to_pylist() if r["status"] == "ok"]
    rows.sort(key=lambda r: (r["score"], r["image_path"]))
    return rows[:k]


def weak_jobs(run_dir: Path, scorer: str, threshold: float) -> dict[str, float]:
    return {
        j: b["score"] for j, b in best_per_job(run_dir, scorer).items() if b["score"] < threshold
    }


_TAG = re.compile(r"~r(\d+)_\d+\.")


def next_round(run_dir: Path) -> int:
    """One past every round in the log and on disk (a round killed before its rows landed
    left its images: the next round's names must not overwrite them)."""
    from batchgen.runlog.reader import read_log

    t = read_log(run_dir, ["job_id", "image_paths"])
    top = 1
    for job_id, paths in zip(t["job_id"].to_pylist(), t["image_paths"].to_pylist(), strict=True):
        for p in paths or []:
            top = max(top, image_round(job_id, p))
    images = Path(run_dir) / "images"
    for name in os.listdir(images) if images.is_dir() else ():
        found = _TAG.search(name)
        if found:
            top = max(top, int(found.group(1)))
    return top + 1


def mark_best(run_dir: Path, scorer: str) -> None:
    save_best(run_dir, best_per_job(run_dir, scorer))


def regenerate(
    args: Any, rundir: Any, manifest: dict[str, Any], console: Any, *, connection: Any,
    values: dict[str, Any], job_file: Path, defaults: dict[str, Any],
) -> int:  # fmt: skip
    """The rounds; returns the exit status. Runs under the run directory's lock."""
    import anyio

    from batchgen.cli.common import EXIT_FAILED, EXIT_OK, EXIT_STOPPED
    from batchgen.cli.prepare import check_job_file, load_prices, make_budget
    from batchgen.cli.run import make_sim_config
    from batchgen.cli.score import (
        local_scorer_or_usage_error,
        print_score_summary,
        require_judge_price,
        scorer_spec,
        spent_total,
    )
    from batchgen.cli.session import SessionPlan, execute, print_ending
    from batchgen.jobs import iter_jobs
    from batchgen.quality.session import score_run
    from batchgen.quality.store import load_scorer
    from batchgen.runlog.rundir import redact_argv

    threshold = float(args.regenerate_below)
    spec = scorer_spec(args, load_scorer(rundir.path), manifest.get("settings") or {})
    import dataclasses

    spec = dataclasses.replace(spec, threshold=threshold)
    if spec.kind == "judge" and spec.provider != "sim" and not spec.base_url:
        spec = dataclasses.replace(spec, base_url=connection.base_url)
    local = local_scorer_or_usage_error(spec)
    prices = load_prices(args)
    require_judge_price(spec, prices, args.max_cost)
    run_id = manifest["run_id"]
    max_rounds = int(args.max_rounds)

    def cap_left() -> float | None:
        if args.max_cost is None:
            return None
        return max(0.0, args.max_cost - spent_total(rundir.path))

    def score() -> Any:
        sim_config = make_sim_config(args) if spec.provider == "sim" else None
        result = anyio.run(lambda: score_run(
            rundir.path, spec, run_id=run_id, values=values, prices=prices,
            cap_usd=cap_left(), sim_config=sim_config, local_scorer=local, console=console,
            quiet=args.quiet,
        ))  # fmt: skip
        mark_best(rundir.path, spec.id)
        if result.to_score:
            print_score_summary(console, rundir.path, spec, result)
        return result

    result = score()
    if result.stop_reason is not None:
        console.print(
            f"[yellow]scoring stopped ({result.stop_reason.value}): {result.stop_message}[/]"
        )
        return EXIT_STOPPED
    rounds = 0
    for _ in range(max_rounds):
        weak = weak_jobs(rundir.path, spec.id, threshold)
        if not weak:
            break
        if args.max_cost is not None and (cap_left() or 0.0) <= 0.0:
            console.print("[yellow]--max-cost leaves nothing for another round[/]")
            return EXIT_STOPPED
        round_no = next_round(rundir.path)
        rounds += 1
        console.print(
            f"round {rounds}/{max_rounds}: regenerating {len(weak)} job(s) whose best image "
            f"scores below {threshold:g} (images tagged ~r{round_no})"
        )
        checked = check_job_file(
            job_file, defaults, prices, only=set(weak),
            rpm=values["rpm"], ipm=values["ipm"], concurrency=values["concurrency"],
        )  # fmt: skip
        budget = make_budget(args, prices, checked, spent_before=spent_total(rundir.path))
        session = rundir.begin_session(
            {"regenerate_below": threshold, "round": round_no}, redact_argv(sys.argv)
        )
        plan = SessionPlan(
            rundir=rundir, manifest=manifest, session=session,
            jobs=(job for job in iter_jobs(job_file, defaults) if job.id in weak),
            jobs_to_run=len(weak), connection=connection, values=values, prices=prices,
            budget=budget, cheapest_job_usd=checked.cheapest_job_usd,
            sim_config=make_sim_config(args) if connection.provider == "sim" else None,
            quiet=args.quiet, image_tag=f"~r{round_no}",
            extra_headers={"X-Batchgen-Round": str(round_no)},
        )  # fmt: skip
        session_result = anyio.run(execute, plan, console)
        if session_result.stop_reason is not None:
            print_ending(console, rundir, session_result, budget)
            score()  # what was made before the stop is still scored
            return EXIT_STOPPED
        result = score()
        if result.stop_reason is not None:
            console.print(
                f"[yellow]scoring stopped ({result.stop_reason.value}): {result.stop_message}[/]"
            )
            return EXIT_STOPPED
    still = weak_jobs(rundir.path, spec.id, threshold)
    console.print(
        f"regeneration: {rounds} round(s); jobs whose best image scores below {threshold:g}: "
        f"{len(still)}; best images marked in {rundir.path / 'scores' / 'best.json'}"
    )
    return EXIT_FAILED if still and rounds >= max_rounds else EXIT_OK
