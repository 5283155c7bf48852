"""One writer per run directory, through the real CLI: a second run/resume refuses while the
first is alive, nothing is corrupted, and a lock left by a kill -9'd process does not block."""

from __future__ import annotations

import json
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


def _start_slow_run(tmp_path: Path, sim) -> tuple[Path, Path, Cli]:
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"lock job {i:02d}" for i in range(JOBS)))
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
            "2",
            "--yes",
            "--quiet",
        ],
        env=cli_env(),
    )
    # requests on the wire: the first process holds the lock for sure
    wait_until(lambda: sim.stats.received >= 1, what="the first request", cli=cli)
    return jobs, run_dir, cli


def test_a_second_resume_or_run_on_a_busy_run_dir_refuses_and_corrupts_nothing(
    tmp_path: Path, make_sim
) -> None:
    # 16 jobs, 2 at a time: once the first request is on the wire, the simulator answers in
    # ~3 s until the refusals are done (the first run holds the directory ~20 s, however slow a
    # loaded machine starts the two refused processes), then fast again
    sim = make_sim(latency_mean=0.5, seed=21)
    jobs, run_dir, first = _start_slow_run(tmp_path, sim)
    sim.update(latency_mean=3.0)

    second = run_cli(["resume", str(run_dir), "--yes", "--quiet"], env=cli_env())
    assert second.code == 2, second.output
    assert f"is in use by batchgen pid {first.pid}" in second.stderr
    assert "Wait for it to finish" in second.stderr
    again = run_cli(
        ["run", str(jobs), "--run-dir", str(run_dir), *MODEL_FLAGS, *sim_flags(sim), "--yes"],
        env=cli_env(),
    )
    assert again.code == 2, again.output
    assert "already holds a run" in again.stderr and f"batchgen resume {run_dir}" in again.stderr
    assert first.running(), "the first run ended before the refusals: slow the simulator"
    sim.update(latency_mean=0.05)
    # the refusals added no session: run.json has the first process's only
    sessions = json.loads((run_dir / "run.json").read_text())["sessions"]
    assert [s["pid"] for s in sessions] == [first.pid]

    done = first.finish()
    assert done.code == 0, done.output
    counts = ok_counts(run_dir)
    assert len(counts) == JOBS and set(counts.values()) == {1}
    assert sim.stats.received == JOBS  # the refused processes sent nothing
    assert image_files(run_dir) == set(logged_images(run_dir))
    check_log_readable(run_dir)
    sessions = json.loads((run_dir / "run.json").read_text())["sessions"]
    assert [s["how"] for s in sessions] == ["completed"]


def test_the_lock_of_a_killed_process_does_not_block_resume(tmp_path: Path, make_sim) -> None:
    sim = make_sim(latency_mean=0.3, seed=22)
    _, run_dir, first = _start_slow_run(tmp_path, sim)
    assert first.kill_hard().code == -9
    lock = json.loads((run_dir / "run.lock").read_text() or "{}")
    assert lock.get("pid") == first.pid  # the dead holder's record is still there

    resumed = run_cli(["resume", str(run_dir), "--yes", "--quiet"], env=cli_env())
    assert resumed.code == 0, resumed.output
    counts = ok_counts(run_dir)
    assert len(counts) == JOBS and set(counts.values()) == {1}
    sessions = json.loads((run_dir / "run.json").read_text())["sessions"]
    assert [s["how"] for s in sessions] == ["crashed", "completed"]
    check_log_readable(run_dir)
