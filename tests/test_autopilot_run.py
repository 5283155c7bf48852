"""The autopilot through the real CLI and real HTTP against the simulator: a burst of hundreds
of tiny-Retry-After 429s fails no job (a 429 for rate uses up no attempt), a provider that
answers nothing but 429s stops the run with its jobs pending, and what was learned reaches
run.json and the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from batchgen.runlog.reader import read_log
from batchgen.runlog.state import job_states
from tests.runhelpers import MODEL_FLAGS, cli_env, run_cli, sim_flags


def _jobs(path: Path, count: int) -> Path:
    path.write_text(
        "".join(json.dumps({"prompt": f"a red fox, take {i}"}) + "\n" for i in range(count))
    )
    return path


def _run(tmp_path: Path, sim: Any, jobs: int, *flags: str, timeout: float = 60) -> tuple[Any, Path]:
    """``batchgen run`` of ``jobs`` prompts against ``sim``; returns (finished, run dir)."""
    run_dir = tmp_path / "run"
    done = run_cli(
        [
            "run",
            str(_jobs(tmp_path / "jobs.jsonl", jobs)),
            "--run-dir",
            str(run_dir),
            *sim_flags(sim),
            *MODEL_FLAGS,
            "--yes",
            "--quiet",
            *flags,
        ],
        env=cli_env(),
        timeout=timeout,
    )
    return done, run_dir


def _manifest(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


@pytest.mark.parametrize(
    ("flags", "rpm", "jobs"),
    [
        # a ceiling far above the provider's: the autopilot comes down
        (["--rpm", "6000"], 300, 60),
        # fixed: hammers, 429 after 429 (hundreds of them in 4 s of a 600/min limit)
        (["--no-adapt", "--rpm", "6000", "--concurrency", "16"], 600, 40),
    ],
    ids=["adaptive", "no-adapt"],
)
def test_a_burst_of_tiny_retry_after_429s_fails_no_job(
    make_sim: Any, tmp_path: Path, flags: list[str], rpm: int, jobs: int
) -> None:
    # ~1 s of burst, then the sim answers 429 with retry-after-ms of a few ms; no headers
    # (the first answer's x-ratelimit-limit would tell the autopilot the limit before any 429)
    sim = make_sim(rpm=rpm, latency_mean=0.02, ratelimit_headers=False, retry_after_mode="ms")
    done, run_dir = _run(tmp_path, sim, jobs, "--max-attempts", "1", *flags, timeout=120)
    assert done.code == 0, done.output
    log = read_log(run_dir)
    limited = log.filter(pc.equal(log["error_class"], "rate_limit"))
    # the answer-clocked ramp meets a handful of 429s before it holds the limit (4 to a few
    # dozen here, fewer as the ramp got better): tiny retry-after 429s were met and none cost
    # an attempt; the hundreds of a hammering pool are the no-adapt case's
    assert limited.num_rows >= (100 if "--no-adapt" in flags else 2), "no 429 burst was driven"
    # every 429 row is a non-final attempt; every job ended with exactly one ok row
    assert not any(limited["final"].to_pylist())
    counts = job_states(run_dir).counts()
    assert counts["done"] == jobs and counts["failed"] == counts["retryable_failed"] == 0
    ok = log.filter(pc.equal(log["status"], "ok"))
    assert sorted(ok["job_id"].to_pylist()) == sorted(set(ok["job_id"].to_pylist()))


def test_nothing_but_429s_stops_the_run_after_the_stall_timeout_with_jobs_pending(
    make_sim: Any, tmp_path: Path
) -> None:
    sim = make_sim(faults={"rate_limit": 1.0}, retry_after_s=0.01)
    done, run_dir = _run(tmp_path, sim, 12, "--stall-timeout", "2", timeout=60)
    assert done.code == 3, done.output
    assert "no progress for" in done.output and "batchgen resume" in done.output
    assert "Traceback" not in done.stderr
    counts = job_states(run_dir).counts()
    assert counts["failed"] == counts["retryable_failed"] == counts["done"] == 0
    assert counts["pending"] + counts.get("unfinished", 0) >= 1
    session = _manifest(run_dir)["sessions"][-1]
    assert session["how"] == "stopped_rate_limit"

    # the provider recovers: resume finishes every job
    sim.update(faults={})
    again = run_cli(["resume", str(run_dir), "--yes", "--quiet"], env=cli_env(), timeout=60)
    assert again.code == 0, again.output
    assert job_states(run_dir).counts()["done"] == 12


@pytest.mark.parametrize("stated_in", ["headers", "429 text"])
def test_what_the_autopilot_learned_is_in_run_json_and_the_report(
    make_sim: Any, tmp_path: Path, stated_in: str
) -> None:
    """The limit in x-ratelimit headers, or only in the 429's text (OpenAI's "on requests per
    min (RPM): Limit 600", no headers): run.json and the report name where it came from."""
    if stated_in == "headers":
        sim = make_sim(rpm=600, latency_mean=0.05)
    else:
        sim = make_sim(rpm=600, latency_mean=0.05, ratelimit_headers=False, limit_message="stated")
    done, run_dir = _run(tmp_path, sim, 80, timeout=60)
    assert done.code == 0, done.output
    learned = _manifest(run_dir)["sessions"][-1]["summary"]["autopilot"]
    assert learned["rpm"] == 600.0 and learned["rpm_source"] == stated_in
    report = run_cli(["report", str(run_dir), "--format", "json"], env=cli_env())
    assert report.code == 0, report.output
    parsed = json.loads(report.stdout)
    assert parsed["autopilot"]["rpm"] == 600.0
    # the run was held at the announced limit: the report says so and how to start there
    limits = [r for r in parsed["recommendations"] if r["kind"] == "limits"]
    assert limits and "--rpm 600" in limits[0]["message"], parsed["recommendations"]


def test_a_short_run_with_a_few_random_429s_recommends_no_limit(
    make_sim: Any, tmp_path: Path
) -> None:
    """The demo's case: 26 jobs, random 429s, no provider limit reached — today's rate is
    bounded by the job count, so no --rpm (slower than needed) is recommended."""
    sim = make_sim(faults={"rate_limit": 0.1}, retry_after_s=0.01, seed=3)
    done, run_dir = _run(tmp_path, sim, 26, timeout=60)
    assert done.code == 0, done.output
    report = json.loads(run_cli(["report", str(run_dir), "--format", "json"], env=cli_env()).stdout)
    assert report["rate_limited"] >= 1, "the seed drove no 429"
    kinds = {r["kind"] for r in report["recommendations"]}
    assert not kinds & {"rpm", "limits"}
