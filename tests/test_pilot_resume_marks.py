"""Resuming a pilot keeps the marks it was started with: `pilot --bar 5`, then the same
command without --bar, judges and tables at 5 (not the default 7); a new --bar on resume
replaces the plan's everywhere, and the pilot says so. Real CLI against the simulator."""

from __future__ import annotations

import json
from pathlib import Path

from tests.runhelpers import cli_env, run_cli, sim_flags, write_jsonl_jobs

COMMON = [
    "--model",
    "gpt-image-1-mini",
    "--size",
    "1024x1024",
    "--try",
    "quality=low,high",
    "--sample",
    "4",
    "--judge",
    "gpt-4o-mini",
    "--yes",
    "--quiet",
    "--no-image-checks",
]


def _pilot(jobs: Path, pilot_dir: Path, sim: object, *extra: str) -> str:
    args = ["pilot", str(jobs), "--run-dir", str(pilot_dir), *COMMON, *sim_flags(sim), *extra]
    done = run_cli(args, env=cli_env(), timeout=120)
    assert done.code == 0 and "Traceback" not in done.output, done.output
    return done.output


def _marks(pilot_dir: Path) -> tuple[float, float, float]:
    """(the plan's bar, the table's bar, the judge's saved threshold)"""
    plan = json.loads((pilot_dir / "pilot.json").read_text())
    result = json.loads((pilot_dir / "pilot-result.json").read_text())
    scorer = json.loads((pilot_dir / "scorer.json").read_text())
    return plan["bar"], result["bar"], scorer["threshold"]


def test_resume_without_bar_keeps_the_pilots_bar_and_a_new_bar_is_said(
    tmp_path: Path, make_sim
) -> None:
    sim = make_sim(variants=10**9)
    jobs = write_jsonl_jobs(
        tmp_path / "jobs.jsonl", ({"id": f"j{i}", "prompt": f"a teapot {i}"} for i in range(8))
    )
    pilot_dir = tmp_path / "pilot"
    _pilot(jobs, pilot_dir, sim, "--bar", "5")
    assert _marks(pilot_dir) == (5, 5, 5)

    out = _pilot(jobs, pilot_dir, sim)  # resumed without --bar
    assert _marks(pilot_dir) == (5, 5, 5), out
    assert "pass≥5 (95%)" in out, out
    assert "--bar" not in out, out  # nothing new was given: nothing to say

    out = _pilot(jobs, pilot_dir, sim, "--bar", "6")  # a new bar on resume
    assert _marks(pilot_dir) == (6, 6, 6), out
    assert "pass≥6 (95%)" in out, out
    assert "--bar 6 replaces the pilot's bar 5" in out, out

    # and later resumes keep the new one
    _pilot(jobs, pilot_dir, sim)
    assert _marks(pilot_dir) == (6, 6, 6)
