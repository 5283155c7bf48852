"""`batchgen pilot` end to end on the simulator over real HTTP (its judge scores by quality,
`[sim:wrong]` makes an image fail): the table, the choice recomputed independently from the
log and the scores, then `run --from-pilot` pays for no sampled job twice."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.compute as pc

from batchgen.quality.store import read_scores
from tests.runhelpers import cli_env, log_table, run_cli, sim_flags, write_jsonl_jobs

JOBS = 40
SAMPLE = 24
BAR = 8  # the simulator's judge: low passes ~75%, medium ~90%, high ~100% at 8
TARGET = 0.9
CONFIDENCE = 0.8
TRY = ["--try", "quality=low,medium,high"]
COMMON = ["--model", "gpt-image-1-mini", "--size", "1024x1024", "--yes", "--quiet"]
SIM = {"variants": 10**9}  # a picture per prompt, so the judge's draws are independent


def write_jobs(path: Path, wrong: set[int] | frozenset[int] = frozenset({5})) -> Path:
    return write_jsonl_jobs(
        path,
        (
            {
                "id": f"shot-{i:03d}",
                "prompt": f"product shot {i}: a ceramic mug"
                + (" [sim:wrong]" if i in wrong else ""),
            }
            for i in range(JOBS)
        ),
    )


def pilot_args(jobs: Path, run_dir: Path, sim: object) -> list[str]:
    return [
        "pilot",
        str(jobs),
        "--run-dir",
        str(run_dir),
        "--sample",
        str(SAMPLE),
        *TRY,
        "--bar",
        str(BAR),
        "--target",
        str(TARGET),
        "--judge",
        "gpt-4o-mini",
        *sim_flags(sim),
        *COMMON,
    ]


def _wilson_lower(k: int, n: int) -> float:
    """Written out again here (not imported): z of a one-sided 80% bound is 0.8416."""
    z = 0.8416212335729143
    p = k / n
    return (p + z * z / (2 * n) - z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (
        1 + z * z / n
    )


def recompute_choice(run_dir: Path) -> tuple[str | None, dict[str, dict[str, float]]]:
    """From the log (quality, cost, images) and the scores alone: per quality, the pass
    share and cost per image; the pick: cheapest per passing image whose lower bound meets
    the target."""
    log = log_table(run_dir).to_pylist()
    scores = {
        r["image_path"]: r["score"] for r in read_scores(run_dir).to_pylist() if r["status"] == "ok"
    }
    per: dict[str, dict[str, float]] = {}
    for r in log:
        q = per.setdefault(r["quality"], {"cost": 0.0, "images": 0, "scored": 0, "passed": 0})
        q["cost"] += r["cost_usd"] or 0.0
        for p in r["image_paths"] or []:
            q["images"] += 1
            if p in scores:
                q["scored"] += 1
                q["passed"] += scores[p] >= BAR
    best, best_price = None, math.inf
    for quality, q in per.items():
        q["each"] = q["cost"] / q["images"]
        q["per_passing"] = q["each"] / (q["passed"] / q["scored"]) if q["passed"] else math.inf
        if _wilson_lower(int(q["passed"]), int(q["scored"])) >= TARGET and (
            q["per_passing"] < best_price
        ):
            best, best_price = quality, q["per_passing"]
    return best, per


def test_pilot_prints_the_table_picks_what_a_person_would_and_apply_pays_once(
    tmp_path: Path, make_sim
) -> None:
    sim = make_sim(**SIM)
    env = cli_env()
    jobs = write_jobs(tmp_path / "jobs.jsonl")
    pilot_dir = tmp_path / "pilot"
    done = run_cli(pilot_args(jobs, pilot_dir, sim), env=env, timeout=120)
    assert done.code == 0, done.output
    out = done.output
    for column in (
        "mean score (95%)",
        f"pass≥{BAR} (95%)",
        "$/image",
        "$/passing",
        "p50",
        "job file $",
        "with regen $",
        "time",
    ):
        assert column in out, out
    plan = json.loads((pilot_dir / "pilot.json").read_text())
    result = json.loads((pilot_dir / "pilot-result.json").read_text())
    sampled = {s["id"] for s in plan["sample"]}
    assert len(sampled) == SAMPLE and f"sample: {', '.join(sorted(sampled))}" in out
    assert len(result["settings"]) == 3

    # every sampled prompt was sent once per setting, nothing else
    by_prompt = sim.stats.snapshot(timeline=False)["by_prompt"]
    sent = {k.split(":")[0].removeprefix("product shot "): v for k, v in by_prompt.items()}
    assert sum(by_prompt.values()) == 3 * SAMPLE
    assert {f"shot-{int(k):03d}" for k in sent} == sampled and set(sent.values()) == {3}

    # the choice, recomputed from the log and the scores alone
    expected, per = recompute_choice(pilot_dir)
    assert expected is not None, per  # the simulator's high quality passes ~all at bar 8
    assert result["chosen"] == f"quality={expected}"
    assert f"chosen: quality={expected}" in out
    for s in result["settings"]:
        q = per[s["label"].removeprefix("quality=")]
        assert s["cost_per_image"] == pytest_approx(q["each"])
        assert s["passed"] == q["passed"] and s["scored"] == q["scored"]
    # low misses the target at this bar (about 75% pass): a person would not pick it
    assert per["low"]["passed"] / per["low"]["scored"] < TARGET

    # the HTML report shows the settings side by side: table, chart, thumbnails
    import batchgen

    page = batchgen.report(pilot_dir, image_checks=False).to_html()
    assert "Pilot: settings side by side" in page and f"quality={expected} ★" in page
    assert page.count('alt="quality=') == 3 * 6 and "<svg" in page

    # -- apply: the whole job file under the chosen setting -------------------------------
    run_dir = tmp_path / "applied"
    judged_before = len(sim.stats.snapshot(timeline=False)["chat"]["judged_by_sha256"])
    done = run_cli(
        [
            "run",
            str(jobs),
            "--from-pilot",
            str(pilot_dir),
            "--run-dir",
            str(run_dir),
            "--regenerate-below",
            "2",
            "--judge",
            "gpt-4o-mini",
            *sim_flags(sim),
            "--yes",
            "--quiet",
        ],
        env=env,
        timeout=120,
    )
    assert done.code == 0, done.output
    by_prompt = sim.stats.snapshot(timeline=False)["by_prompt"]
    assert sum(by_prompt.values()) == 3 * SAMPLE + (JOBS - SAMPLE)  # the rest only
    # the quality loop judged the rest only: the pilot's verdicts came with its images
    assert f"{SAMPLE} verdict(s) of the pilot's judge carried over" in done.output
    judged = sim.stats.snapshot(timeline=False)["chat"]["judged_by_sha256"]
    assert len(judged) - judged_before == JOBS - SAMPLE
    log = log_table(run_dir)
    assert log.num_rows == JOBS
    assert set(log["quality"].to_pylist()) == {expected}
    reused = log.filter(pc.equal(log["cost_source"], "reused")).to_pylist()
    assert {r["job_id"] for r in reused} == sampled
    assert {r["reused_from"] for r in reused} == {str(pilot_dir.resolve())}
    assert all(r["cost_usd"] == 0.0 for r in reused)
    for r in reused:  # the pilot's very image, under the job's own name
        name = f"{r['job_id']}={expected}_0.png"
        assert (run_dir / r["image_paths"][0]).read_bytes() == (
            pilot_dir / "images" / name
        ).read_bytes()
    report = run_cli(["report", str(run_dir)], env=env)
    text = " ".join(report.output.replace("│", " ").split())
    assert f"{SAMPLE} images reused from earlier runs" in text, text


def pytest_approx(value: float) -> object:
    import pytest

    return pytest.approx(value, rel=1e-9)


def test_the_pilots_spend_counts_against_max_cost_and_a_rerun_finishes(
    tmp_path: Path, make_sim
) -> None:
    """In process (the same path as the CLI, real HTTP to the simulator): a cap too small
    for the pilot stops it with settings pending; the same pilot with a higher cap finishes
    the rest, and images and judging together stay under each cap."""
    from batchgen.money.spent import spent
    from batchgen.pilot.run import run_pilot

    sim = make_sim(**SIM)
    jobs = write_jobs(tmp_path / "jobs.jsonl", wrong=set())
    pilot_dir = tmp_path / "pilot"
    flags = {
        "base_url": sim.base_url,
        "judge": "gpt-4o-mini",
        "sample": "6",
        "try_": ["quality=low,high"],
        "model": "gpt-image-1-mini",
        "size": "1024x1024",
        "yes": True,
        "quiet": True,
        "image_checks": False,
    }
    said: list[str] = []
    first = run_pilot(
        jobs, {**flags, "max_cost": 0.05}, run_dir=pilot_dir, say=said.append, handle_signals=False
    )
    assert first.exit_code == 3 and first.result is None
    assert any("--max-cost <higher>" in line for line in said), said
    assert spent(pilot_dir).total <= 0.05
    served = sim.stats["ok"]
    assert 0 < served < 12
    second = run_pilot(
        jobs, {**flags, "max_cost": 1.0}, run_dir=pilot_dir, say=said.append, handle_signals=False
    )
    assert second.exit_code == 0 and second.result is not None
    assert sim.stats["ok"] == 12  # the rest only: 6 jobs × 2 settings in all
    assert all(s["images"] == 6 for s in second.result["settings"])
    assert spent(pilot_dir).total <= 1.0
