"""An endpoint that cannot be reached stops the run with its jobs pending (exit 3), like a bad
key does, instead of burning every job's attempts and calling them "failed for good"
(issue 23, acceptance 4). Real HTTP: a closed port on 127.0.0.1 and a server that resets
every connection (the simulator's ``disconnect`` fault on every request)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from batchgen.cli.main import main
from batchgen.errors import ErrorClass
from batchgen.runlog.reader import read_log
from batchgen.runlog.state import job_states
from batchgen.runner.reach import Reachability
from batchgen.testing import BackoffWaits

JOBS = 12


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-UNREACH-0000")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def closed_port() -> int:
    """A port nothing listens on: bound, then closed (connect gets ECONNREFUSED)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_against(tmp_path: Path, base_url: str, *extra: str) -> tuple[int, Path, float]:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(f"prompt number {i}\n" for i in range(JOBS)))
    run_dir = tmp_path / "run"
    t0 = time.monotonic()
    code = main(
        [
            "run",
            str(jobs),
            "--base-url",
            base_url,
            "--run-dir",
            str(run_dir),
            "--quiet",
            "--model",
            "gpt-image-1-mini",
            "--concurrency",
            "4",
            "--max-attempts",
            "5",
            *extra,
        ]
    )
    return code, run_dir, time.monotonic() - t0


def assert_stopped_pending(run_dir: Path, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert code == 3
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["sessions"][-1]["how"] == "stopped_network"
    counts = job_states(run_dir).counts()
    assert counts["failed"] == 0 and counts["retryable_failed"] == 0
    log = read_log(run_dir).to_pylist()
    # no job was failed for good: every error row that ended a job is not final
    assert not [r for r in log if r["status"] == "error" and r["final"]]
    # attempts were not burnt: far fewer than every job's five
    assert sum(r["status"] == "error" for r in log) < JOBS * 5
    out = capsys.readouterr()
    said = out.out + out.err
    assert "unreachable" in said and "network error" in said
    assert "failed for good" not in said


def test_closed_port_stops_the_run_with_its_jobs_pending(
    tmp_path: Path, no_backoff: BackoffWaits, capsys: pytest.CaptureFixture[str]
) -> None:
    # --no-adapt: no slow start pacing the failures, so a job spends its attempts at once
    url = f"http://127.0.0.1:{closed_port()}/v1"
    code, run_dir, took = run_against(tmp_path, url, "--no-adapt")
    assert_stopped_pending(run_dir, code, capsys)
    assert took < 10


@pytest.mark.slow
def test_closed_port_under_the_autopilot_stops_within_the_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As a user sees it: the autopilot's slow start sends about one request a second, real
    backoff between a job's attempts; the run stops after the 5 s window, not 16 s later."""
    code, run_dir, took = run_against(tmp_path, f"http://127.0.0.1:{closed_port()}/v1")
    assert_stopped_pending(run_dir, code, capsys)
    assert took < 12


def test_a_server_that_resets_every_connection_stops_the_run(
    tmp_path: Path, make_sim, no_backoff: BackoffWaits, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = make_sim(faults={"disconnect": 1.0})
    code, run_dir, _ = run_against(tmp_path, sim.base_url, "--no-adapt")
    assert_stopped_pending(run_dir, code, capsys)
    # every job it took is pending (the rest were never taken): resume sends them all again
    taken = {r["job_id"] for r in read_log(run_dir).to_pylist()}
    assert taken and job_states(run_dir).ids("pending") == taken


def test_the_window_stops_a_run_whose_jobs_still_have_attempts() -> None:
    """No job has spent its attempts yet, but nothing has answered for the window: down."""
    reach = Reachability(0.0, streak=5, window_s=10.0)
    for t in range(5):
        reach.failed(ErrorClass.NETWORK, "connection refused", float(t))
    assert reach.down(4.0) is None  # five in a row, but only 4 s without an answer
    assert reach.down(4.0, job_exhausted=True) is not None  # a job spent its attempts
    assert "connection refused" in (reach.down(10.5) or "")
    reach.failed(ErrorClass.TIMEOUT, "slow", 10.6)  # a timeout says nothing either way
    assert reach.down(10.7) is not None
    # one answer between (a 500 is an answer) resets the streak: a brief outage is retried
    reach.failed(ErrorClass.SERVER, "500", 11.0)
    reach.failed(ErrorClass.NETWORK, "reset", 30.0)
    assert reach.down(30.0, job_exhausted=True) is None
