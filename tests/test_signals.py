"""Graceful stop: a real SIGINT / SIGTERM to the CLI subprocess while requests are in flight."""

from __future__ import annotations

import json
import shlex
import signal
from pathlib import Path

import pyarrow.compute as pc
import pytest

from tests.runhelpers import (
    MODEL_FLAGS,
    Cli,
    check_log_readable,
    cli_env,
    image_files,
    log_table,
    logged_images,
    ok_counts,
    run_cli,
    sim_flags,
    wait_until,
    write_text_jobs,
)

pytestmark = pytest.mark.timeout(90)

JOBS = 24
CONCURRENCY = 4


def _resume_command(stdout: str) -> list[str]:
    """The `batchgen resume ...` line the CLI printed, as argv for this interpreter."""
    lines = [line for line in stdout.splitlines() if "batchgen resume " in line]
    assert lines, f"no resume command printed:\n{stdout}"
    argv = shlex.split(lines[-1].split("to finish the rest:", 1)[-1].strip())
    assert argv[:2] == ["batchgen", "resume"], argv
    return argv[1:]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_first_signal_lets_in_flight_requests_finish_then_resume_finishes_the_batch(
    tmp_path: Path, make_sim, signum: signal.Signals
) -> None:
    sim = make_sim(latency_mean=0.5, seed=5)
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"signal job {i:02d}" for i in range(JOBS)))
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
    # the second wave is in flight: some answers are back, four requests are being served
    wait_until(lambda: sim.stats.received >= CONCURRENCY + 2, what="a second wave", cli=cli)
    cli.proc.send_signal(signum)
    stopped = cli.finish()
    assert stopped.code == 3, stopped.output
    assert signal.Signals(signum).name in stopped.stdout

    stats = sim.stats.snapshot(timeline=False)
    # every request that was sent was answered, and its answer was logged as ok: none was
    # cancelled in flight, none was dropped
    assert stats["received"] == stats["outcomes"]["ok"]
    counts = ok_counts(run_dir)
    assert len(counts) == stats["outcomes"]["ok"] < JOBS
    log = log_table(run_dir, ["status", "error_class"])
    cancelled_in_flight = pc.and_(
        pc.equal(log["status"], "error"), pc.equal(log["error_class"], "cancelled")
    )
    assert not pc.any(cancelled_in_flight).as_py()
    check_log_readable(run_dir)  # flushed and compacted on the way out
    sessions = json.loads((run_dir / "run.json").read_text())["sessions"]
    assert [s["how"] for s in sessions] == ["interrupted"]

    # the slow answers were there to catch requests in flight at the signal; the resume only
    # has to finish the rest, once each
    sim.update(latency_mean=0.02)
    resumed = run_cli(_resume_command(stopped.stdout), env=cli_env())
    assert resumed.code == 0, resumed.output
    by_prompt = sim.stats.snapshot(timeline=False)["by_prompt"]
    assert len(by_prompt) == JOBS and set(by_prompt.values()) == {1}  # nothing sent twice
    assert set(ok_counts(run_dir).values()) == {1} and len(ok_counts(run_dir)) == JOBS
    assert image_files(run_dir) == set(logged_images(run_dir))


def test_second_sigint_cancels_in_flight_requests_and_keeps_what_finished(
    tmp_path: Path, make_sim
) -> None:
    # answers take 20 s: only a cancel can end the run quickly; grace is long on purpose
    sim = make_sim(latency_mean=20.0, seed=6)
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"slow job {i}" for i in range(8)))
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
            "--grace",
            "60",
            "--yes",
            "--quiet",
        ],
        env=cli_env(),
    )
    wait_until(lambda: sim.stats.received >= 2, what="two requests in flight", cli=cli)
    cli.proc.send_signal(signal.SIGINT)
    wait_until(lambda: "stopping" in cli.stdout_so_far(), what="the first stop message", cli=cli)
    cli.proc.send_signal(signal.SIGINT)
    stopped = cli.finish(timeout=15)
    assert stopped.code == 3, stopped.output
    assert "cancelling requests in flight" in stopped.stdout
    log = log_table(run_dir, ["job_id", "status", "error_class", "final"])
    cancelled = log.filter(pc.equal(log["error_class"], "cancelled"))
    assert cancelled.num_rows == 2 and pc.all(cancelled["final"]).as_py()
    check_log_readable(run_dir)
    # cancelled jobs are pending: they are exactly what the export lists as pending
    pending = run_cli(["jobs", str(run_dir), "--status", "pending"], env=cli_env())
    assert pending.code == 0 and len(pending.stdout.splitlines()) == 8
