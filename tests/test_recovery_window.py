"""A resume killed before it has logged what a crashed session left in flight loses nothing:
the crashed session is marked ended only once its requests in flight are durable in the log,
so the next resume finds the same jobs and flags them "possibly billed twice".

(A resume used to mark the crashed sessions first and log their requests in flight only after
reading the job file, the prices and starting its session: killed in between, the next resume
no longer looked at those sessions, and sent the jobs again unflagged.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from batchgen import faultpoints
from batchgen.runner.recovery import IN_FLIGHT_AT_CRASH
from tests.runhelpers import (
    MODEL_FLAGS,
    Cli,
    cli_env,
    job_ids_by_prompt,
    log_table,
    ok_counts,
    run_cli,
    sim_flags,
    wait_until,
    write_text_jobs,
)

pytestmark = pytest.mark.timeout(120)

JOBS = 40
CONCURRENCY = 8


def _requested(sim: Any) -> dict[str, int]:
    return dict(sim.stats.snapshot(timeline=False)["by_prompt"])


def test_a_resume_killed_before_it_logs_the_crashed_requests_leaves_them_flagged(
    tmp_path: Path, make_sim: Any
) -> None:
    # answers take ~0.4 s: at the kill, about CONCURRENCY requests are in flight
    sim = make_sim(latency_mean=0.4, latency_jitter=0.05, seed=7)
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"window job {i:02d}" for i in range(JOBS)))
    run_dir = tmp_path / "run"
    common = [*sim_flags(sim), "--concurrency", str(CONCURRENCY), "--yes", "--quiet"]
    first = Cli(["run", str(jobs), "--run-dir", str(run_dir), *MODEL_FLAGS, *common], env=cli_env())
    wait_until(lambda: sim.stats["ok"] >= 10, what="10 served", cli=first)
    assert first.kill_hard().code == -9

    resume = ["resume", str(run_dir), *common]
    # the next resume dies after starting its session, before it logs the crashed requests
    killed = run_cli(resume, env=cli_env(crash_at="resume:before_recovery_rows:1"))
    assert killed.code == faultpoints.EXIT_CODE, killed.output
    final = run_cli(resume, env=cli_env())
    assert final.code == 0, final.output

    id_of = job_ids_by_prompt(run_dir)
    assert set(ok_counts(run_dir).values()) == {1} and len(ok_counts(run_dir)) == JOBS
    log = log_table(run_dir, ["job_id", "error_code"])
    flagged = set(log.filter(pc.equal(log["error_code"], IN_FLIGHT_AT_CRASH))["job_id"].to_pylist())
    sent_twice = {id_of[p] for p, k in _requested(sim).items() if k > 1}
    assert sent_twice, "no request was in flight at the kill: the test saw nothing"
    assert sent_twice <= flagged
