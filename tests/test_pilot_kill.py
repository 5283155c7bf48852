"""kill -9 during a pilot and during its --from-pilot run; each resumed: every job ends with
exactly one successful row, and nothing was sent again but requests in flight at the kill,
which the report counts as possibly billed twice (an upper bound: a request journaled just
before the kill may never have reached the server). Marked slow (make bench /
pytest -m slow); the reuse it rests on is covered in the default set by test_pilot.py."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from tests.runhelpers import (
    Cli,
    cli_env,
    log_table,
    ok_counts,
    run_cli,
    sim_flags,
    wait_until,
    write_jsonl_jobs,
)

JOBS, SAMPLE = 16, 8
TRY = ["--try", "quality=low,medium,high"]
COMMON = [
    "--model",
    "gpt-image-1-mini",
    "--size",
    "1024x1024",
    "--yes",
    "--quiet",
    "--no-image-checks",
    "--concurrency",
    "3",
    "--grace",
    "60",
]


def _billed_twice(run_dir: Path) -> int:
    done = run_cli(["report", str(run_dir), "--format", "json", "--no-image-checks"], env=cli_env())
    assert done.code == 0 and "Traceback" not in done.output, done.output
    return int(json.loads(done.stdout)["possibly_billed_twice"])


def _sent(*sims) -> int:
    return sum(sum(s.stats.snapshot(timeline=False)["by_prompt"].values()) for s in sims)


@pytest.mark.slow  # ~50 s on a busy 2-core box: seven CLI processes, two killed
def test_kill_9_during_pilot_and_apply_then_resume_pays_nothing_twice(
    tmp_path: Path, make_sim
) -> None:
    jobs = write_jsonl_jobs(
        tmp_path / "jobs.jsonl",
        ({"id": f"k{i:02d}", "prompt": f"a lamp, angle {i}"} for i in range(JOBS)),
    )
    pilot_dir = tmp_path / "pilot"

    def pilot(sim) -> list[str]:
        return [
            "pilot",
            str(jobs),
            "--run-dir",
            str(pilot_dir),
            "--sample",
            str(SAMPLE),
            *TRY,
            "--judge",
            "gpt-4o-mini",
            "--bar",
            "7",
            *sim_flags(sim),
            *COMMON,
        ]

    slow = make_sim(latency_mean=0.5, seed=1, variants=10**9)
    cli = Cli(pilot(slow), env=cli_env())
    wait_until(lambda: slow.stats["ok"] >= 6, what="six pilot requests answered", cli=cli)
    cli.kill_hard()
    fast = make_sim(latency_mean=0.0, seed=2, variants=10**9)
    done = run_cli(pilot(fast), env=cli_env(), timeout=120)
    assert done.code == 0, done.output
    assert "chosen:" in done.output or "none chosen" in done.output
    counts = ok_counts(pilot_dir)
    assert len(counts) == 3 * SAMPLE and set(counts.values()) == {1}
    # sent again at most what was journaled in flight at the kill (a journaled request may
    # not have reached the server before the kill: the count is an upper bound)
    assert 3 * SAMPLE <= _sent(slow, fast) <= 3 * SAMPLE + _billed_twice(pilot_dir)

    # -- the apply, killed after a few requests of the rest --------------------------------
    run_dir = tmp_path / "applied"
    slow2 = make_sim(latency_mean=0.5, seed=3, variants=10**9)
    cli = Cli(
        [
            "run",
            str(jobs),
            "--from-pilot",
            str(pilot_dir),
            "--setting",
            "3",
            "--run-dir",
            str(run_dir),
            *sim_flags(slow2),
            "--yes",
            "--quiet",
            "--no-image-checks",
            "--concurrency",
            "2",
            "--grace",
            "60",
        ],
        env=cli_env(),
    )
    wait_until(lambda: slow2.stats["ok"] >= 2, what="two requests of the rest", cli=cli)
    cli.kill_hard()
    fast2 = make_sim(latency_mean=0.0, seed=4, variants=10**9)
    done = run_cli(["resume", str(run_dir), "--quiet", *sim_flags(fast2)], env=cli_env())
    assert done.code == 0, done.output
    counts = ok_counts(run_dir)
    assert len(counts) == JOBS and set(counts.values()) == {1}
    log = log_table(run_dir)
    ok = log.filter(pc.equal(log["status"], "ok"))
    reused = ok.filter(pc.equal(ok["cost_source"], "reused"))
    sampled = {s["id"] for s in json.loads((pilot_dir / "pilot.json").read_text())["sample"]}
    assert set(reused["job_id"].to_pylist()) == sampled
    assert set(ok["quality"].to_pylist()) == {"high"}
    # the pilot's sims saw nothing more; the apply sent the rest once, plus what was lost
    assert 3 * SAMPLE <= _sent(slow, fast) <= 3 * SAMPLE + _billed_twice(pilot_dir)
    rest = JOBS - SAMPLE
    assert rest <= _sent(slow2, fast2) <= rest + _billed_twice(run_dir)
