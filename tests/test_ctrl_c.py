"""Ctrl-C as a user at a terminal sends it: SIGINT to the whole process group of a real
`batchgen run` against the simulator, once and twice (issue 23, acceptance 2). The last
progress line and the summary agree; jobs cut by the stop are pending, not failed (a 500 or
a cancellation during the shutdown is not "failed for good"); the resume command is printed
once. And a closed stdout pipe (`batchgen resume RUN | head -3`) ends quietly, its session
ended as interrupted, not left to look crashed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from tests.runhelpers import (
    MODEL_FLAGS,
    Cli,
    cli_env,
    log_table,
    run_cli,
    sim_flags,
    wait_until,
    write_text_jobs,
)

pytestmark = pytest.mark.timeout(90)

JOBS = 40
FLAGS = ("--concurrency", "8", "--no-adapt", "--max-attempts", "5", "--yes")

# the plain line names failures only once there are some
PROGRESS = re.compile(r"\] (\d+)/(\d+) · ok (\d+)(?: · failed (\d+))? · pending (\d+) ·")
SUMMARY = re.compile(r"(\d+) succeeded, (\d+) failed, (\d+) pending of (\d+) jobs")


def _start(tmp_path: Path, sim) -> tuple[Cli, Path]:
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"ctrl-c job {i:03d}" for i in range(JOBS)))
    run_dir = tmp_path / "run"
    args = ["run", str(jobs), "--run-dir", str(run_dir), *MODEL_FLAGS, *sim_flags(sim), *FLAGS]
    return Cli(args, env=cli_env(), new_group=True), run_dir


def _counts(stdout: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(done, total, ok, failed, pending) of the last progress line; (ok, failed, pending,
    total) of the summary."""
    progress = PROGRESS.findall(stdout)
    summary = SUMMARY.findall(stdout)
    assert progress and summary, stdout
    return tuple(int(n or 0) for n in progress[-1]), tuple(map(int, summary[-1]))


def _check_stopped(cli: Cli, run_dir: Path) -> None:
    done = cli.finish()
    assert done.code == 3, done.output
    assert "Traceback" not in done.output, done.output
    (p_done, p_total, p_ok, p_failed, p_pending), (s_ok, s_failed, s_pending, s_total) = _counts(
        done.stdout
    )
    # the last progress line and the summary say the same thing
    assert (p_ok, p_failed, p_pending, p_total) == (s_ok, s_failed, s_pending, s_total)
    assert p_done == p_ok + p_failed and s_pending == JOBS - s_ok - s_failed > 0
    # nothing failed for good: the 500s and cancellations of the shutdown left jobs pending
    assert s_failed == 0, done.stdout
    log = log_table(run_dir, ["status", "error_class", "final"])
    final_errors = log.filter(
        pc.and_(pc.equal(log["status"], "error"), pc.fill_null(log["final"], False))
    )
    assert set(final_errors["error_class"].to_pylist()) <= {"cancelled"}
    # the resume command once
    assert done.stdout.count("batchgen resume ") == 1, done.stdout
    sessions = json.loads((run_dir / "run.json").read_text())["sessions"]
    assert [s["how"] for s in sessions] == ["interrupted"]


def test_one_ctrl_c_counts_agree_and_the_cut_jobs_are_pending(tmp_path: Path, make_sim) -> None:
    # every third answer a 500: some arrive while the run is stopping, some jobs are in backoff
    sim = make_sim(latency_mean=0.4, faults={"server": 0.35}, seed=11)
    cli, run_dir = _start(tmp_path, sim)
    wait_until(lambda: sim.stats.received >= 20, what="twenty requests", cli=cli)
    os.killpg(cli.pid, signal.SIGINT)
    _check_stopped(cli, run_dir)
    stats = sim.stats.snapshot(timeline=False)
    assert stats["outcomes"].get("server", 0) > 0  # the faults did happen


def test_a_double_ctrl_c_cancels_in_flight_jobs_into_pending(tmp_path: Path, make_sim) -> None:
    # slow answers: only the second Ctrl-C ends the requests in flight
    sim = make_sim(latency_mean=20.0, seed=12)
    cli, run_dir = _start(tmp_path, sim)
    wait_until(lambda: sim.stats.received >= 8, what="eight requests in flight", cli=cli)
    os.killpg(cli.pid, signal.SIGINT)
    wait_until(lambda: "stopping" in cli.stdout_so_far(), what="the first stop", cli=cli)
    os.killpg(cli.pid, signal.SIGINT)
    t0 = time.monotonic()
    _check_stopped(cli, run_dir)
    assert time.monotonic() - t0 < 15  # not the 20 s answers, nor the 30 s grace
    log = log_table(run_dir, ["error_class"])
    assert pc.sum(pc.equal(log["error_class"], "cancelled")).as_py() >= 8


def test_a_closed_stdout_pipe_ends_quietly_and_the_session_is_not_crashed(
    tmp_path: Path, make_sim
) -> None:
    # 2 s answers: the session is still running when the reader goes away
    sim = make_sim(latency_mean=2.0, seed=13)
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"pipe job {i:03d}" for i in range(JOBS)))
    run_dir = tmp_path / "run"
    # a first session that leaves every job pending: stopped by a budget of nothing
    first = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--max-cost",
            "0.000001",
            "--yes",
            "--quiet",
        ],
        env=cli_env(),
    )
    assert first.code == 3, first.output
    # `batchgen resume RUN | head -3`: the reader takes three lines and goes away
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchgen", "resume", str(run_dir), *FLAGS, "--max-cost", "100"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    for _ in range(3):
        proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    assert err == ""  # quiet: no traceback, no "Exception ignored ... BrokenPipeError"
    assert code == 3  # the closed pipe stopped the session, like a Ctrl-C
    sessions = json.loads((run_dir / "run.json").read_text())["sessions"]
    assert sessions[-1]["how"] == "interrupted"
    from batchgen.reports import build_report

    report = build_report(run_dir, image_checks=False)
    assert "crashed" not in report.to_text() and "crashed" not in report.to_json()
