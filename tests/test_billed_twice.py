""" "Possibly billed twice" counts exactly the requests sent again after one of the same job
was lost in flight (kill -9, or a second Ctrl-C cancelling it): not adopted images, not jobs
a run killed and never resumed did not send again.

The stopping session talks to a slow simulator (answers take 30 s, so what is in flight is
known exactly); the resume is pointed at a fast one (`--base-url` overrides run.json)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.runhelpers import (
    MODEL_FLAGS,
    Cli,
    cli_env,
    ok_counts,
    run_cli,
    sim_flags,
    wait_until,
    write_text_jobs,
)

pytestmark = pytest.mark.timeout(120)

JOBS = 10


def _billed_twice(run_dir: Path) -> int:
    done = run_cli(["report", str(run_dir), "--format", "json", "--no-image-checks"], env=cli_env())
    assert done.code == 0 and "Traceback" not in done.output, done.output
    return json.loads(done.stdout)["possibly_billed_twice"]


def _start(tmp_path: Path, sim, concurrency: int, **kw) -> tuple[Path, Cli]:
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"billed job {i}" for i in range(JOBS)))
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
            str(concurrency),
            "--grace",
            "60",
            "--yes",
            "--quiet",
        ],
        env=kw.get("env") or cli_env(),
    )
    return run_dir, cli


def _resume_on(run_dir: Path, sim) -> None:
    done = run_cli(["resume", str(run_dir), "--quiet", *sim_flags(sim)], env=cli_env())
    assert done.code == 0, done.output
    counts = ok_counts(run_dir)
    assert len(counts) == JOBS and set(counts.values()) == {1}


def _sent_twice(*sims) -> int:
    seen: dict[str, int] = {}
    for sim in sims:
        for prompt, n in sim.stats.snapshot(timeline=False)["by_prompt"].items():
            seen[prompt] = seen.get(prompt, 0) + n
    return sum(1 for n in seen.values() if n == 2)


def test_killed_in_flight_counts_zero_until_resume_sends_them_again(
    tmp_path: Path, make_sim
) -> None:
    slow = make_sim(latency_mean=30.0, seed=41)
    run_dir, cli = _start(tmp_path, slow, 4)
    wait_until(lambda: slow.stats.received >= 4, what="four requests in flight", cli=cli)
    cli.kill_hard()
    # nothing was sent again yet: a run killed and never resumed reports 0, not 4
    assert _billed_twice(run_dir) == 0

    fast = make_sim(latency_mean=0.0, seed=42)
    _resume_on(run_dir, fast)
    assert _sent_twice(slow, fast) == 4
    assert _billed_twice(run_dir) == 4


def test_an_adopted_image_is_not_counted(tmp_path: Path, make_sim) -> None:
    sim = make_sim(latency_mean=0.0, seed=43)
    # the first answer's image is saved, then the process dies before its row: one request
    # was in flight, its image is adopted on resume and it is never sent again
    run_dir, cli = _start(tmp_path, sim, 1, env=cli_env(crash_at="image:before_row:1"))
    assert cli.finish().code == 137
    _resume_on(run_dir, sim)
    assert _sent_twice(sim) == 0
    assert _billed_twice(run_dir) == 0


def test_requests_cancelled_by_a_second_ctrl_c_count_once_resent(tmp_path: Path, make_sim) -> None:
    slow = make_sim(latency_mean=30.0, seed=44)
    run_dir, cli = _start(tmp_path, slow, 2)
    wait_until(lambda: slow.stats.received >= 2, what="two requests in flight", cli=cli)
    cli.proc.send_signal(signal.SIGINT)
    wait_until(lambda: "stopping" in cli.stdout_so_far(), what="the first stop", cli=cli)
    cli.proc.send_signal(signal.SIGINT)
    assert cli.finish(timeout=20).code == 3
    assert _billed_twice(run_dir) == 0  # cancelled, not yet sent again

    fast = make_sim(latency_mean=0.0, seed=45)
    _resume_on(run_dir, fast)
    assert _sent_twice(slow, fast) == 2
    assert _billed_twice(run_dir) == 2
