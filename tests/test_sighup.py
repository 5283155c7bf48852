"""SIGHUP (the terminal closed, the ssh session dropped) stops a run like SIGTERM: no new
request, the requests in flight finish, the log is flushed, exit 3, and resume finishes."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.runhelpers import (
    MODEL_FLAGS,
    Cli,
    check_log_readable,
    cli_env,
    image_files,
    logged_images,
    ok_counts,
    run_cli,
    sim_flags,
    wait_until,
    write_text_jobs,
)

pytestmark = pytest.mark.timeout(90)

JOBS = 16
CONCURRENCY = 4


def test_sighup_stops_gracefully_and_flushes_then_resume_finishes(tmp_path: Path, make_sim) -> None:
    sim = make_sim(latency_mean=0.5, seed=11)
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"hangup job {i:02d}" for i in range(JOBS)))
    run_dir = tmp_path / "run"
    cli = Cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--concurrency",
            str(CONCURRENCY),
            "--yes",
            "--quiet",
        ],
        env=cli_env(),
    )
    wait_until(lambda: sim.stats.received >= CONCURRENCY + 2, what="a second wave", cli=cli)
    cli.proc.send_signal(signal.SIGHUP)
    stopped = cli.finish()
    # the default action of SIGHUP kills the process: -1 and no final flush
    assert stopped.code == 3, stopped.output
    assert "SIGHUP" in stopped.stdout
    assert "Traceback" not in stopped.output
    assert "batchgen resume" in stopped.stdout
    stats = sim.stats.snapshot(timeline=False)
    # every answer received was logged: the requests in flight were let finish
    assert len(ok_counts(run_dir)) == stats["outcomes"]["ok"] == stats["received"] < JOBS
    check_log_readable(run_dir)
    sessions = json.loads((run_dir / "run.json").read_text())["sessions"]
    assert [s["how"] for s in sessions] == ["interrupted"]

    resumed = run_cli(["resume", str(run_dir)], env=cli_env())
    assert resumed.code == 0, resumed.output
    by_prompt = sim.stats.snapshot(timeline=False)["by_prompt"]
    assert len(by_prompt) == JOBS and set(by_prompt.values()) == {1}
    counts = ok_counts(run_dir)
    assert len(counts) == JOBS and set(counts.values()) == {1}
    assert image_files(run_dir) == set(logged_images(run_dir))
