"""``--via batch``: the real CLI in a subprocess against the simulator's Batch API over HTTP.

The simulator's batch clock is compressed (``batch_seconds``) and the CLI polls every few
hundredths of a second, so nothing waits on a fixed sleep. The simulator's counters per
custom_id (``submitted``, ``billed``) are the ground truth for "never submitted twice" and
"never paid twice"; the run's log and images are checked against them.
"""

from __future__ import annotations

import json
import math
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from batchgen import faultpoints
from batchgen.runlog.state import DONE, PENDING, RETRYABLE_FAILED, job_states
from tests.runhelpers import (
    MODEL_FLAGS,
    SECRET_KEY,
    Cli,
    check_log_readable,
    cli_env,
    files_holding_secret,
    image_files,
    log_table,
    logged_images,
    ok_counts,
    run_cli,
    secret_in_log,
    wait_until,
    write_text_jobs,
)

pytestmark = pytest.mark.timeout(180)

POLL = ["--poll-interval", "0.02", "--poll-max", "0.1"]


def batch_stats(sim: Any) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sim.root_url}/_sim/stats?timeline=0", timeout=10) as resp:
        return json.loads(resp.read())["batch"]


def _jobs(tmp: Path, n: int, name: str = "jobs.txt", prefix: str = "a quiet harbour") -> Path:
    return write_text_jobs(tmp / name, (f"{prefix} number {i:05d}" for i in range(n)))


def _run(jobs: Path, run_dir: Path, sim: Any, *extra: str) -> list[str]:
    return [
        "run",
        str(jobs),
        "--run-dir",
        str(run_dir),
        *MODEL_FLAGS,
        "--base-url",
        sim.base_url,
        "--via",
        "batch",
        *POLL,
        "--yes",
        *extra,
    ]


def _resume(run_dir: Path, *extra: str) -> list[str]:
    return ["resume", str(run_dir), *POLL, "--yes", "--quiet", *extra]


def _ids(run_dir: Path) -> set[str]:
    from tests.runhelpers import job_ids_by_prompt

    return set(job_ids_by_prompt(run_dir).values())


def _check_once_each(run_dir: Path, sim: Any, jobs: int) -> None:
    """Every job exactly one ok row, images on disk == the ok rows' images, nothing billed
    twice, the log readable by every reader, the key nowhere."""
    counts = ok_counts(run_dir)
    assert len(counts) == jobs and set(counts.values()) == {1}
    assert sorted(counts) == sorted(_ids(run_dir))
    logged = logged_images(run_dir)
    assert len(logged) == len(set(logged)) == jobs
    assert image_files(run_dir) == set(logged)
    stats = batch_stats(sim)
    assert set(stats["billed"].values()) <= {1}
    check_log_readable(run_dir)
    assert files_holding_secret(run_dir) == [] and not secret_in_log(run_dir)


def _usage_cost_at_batch_rate(run_dir: Path) -> float:
    """The test's own reference: gpt-image-1 at half of $5/M text in and $40/M image out."""
    t = log_table(run_dir, ["status", "input_text_tokens", "output_tokens"])
    t = t.filter(pc.equal(t["status"], "ok"))
    text = pc.sum(t["input_text_tokens"]).as_py()
    out = pc.sum(t["output_tokens"]).as_py()
    return (text * 5.0 + out * 40.0) / 1e6 * 0.5


@pytest.mark.parametrize(
    ("count", "per_batch", "parts"),
    [
        pytest.param(500, 170, [170, 170, 160], id="500"),
        pytest.param(5_000, 1_700, [1700, 1700, 1600], id="5000", marks=pytest.mark.slow),
    ],
)
def test_jobs_split_across_batches_complete_once_each_at_the_batch_rate(
    tmp_path: Path, make_sim, count: int, per_batch: int, parts: list[int]
) -> None:
    sim = make_sim(batch_seconds=1.5)
    jobs = _jobs(tmp_path, count)
    run_dir = tmp_path / "run"
    plan = run_cli(
        ["plan", str(jobs), *MODEL_FLAGS, "--via", "batch", "--format", "json"], env=cli_env()
    )
    assert plan.code == 0, plan.output
    quoted = json.loads(plan.stdout)
    done = run_cli(
        _run(jobs, run_dir, sim, "--batch-max-requests", str(per_batch)), env=cli_env(), timeout=150
    )
    assert done.code == 0, done.output
    stats = batch_stats(sim)
    assert stats["batches_created"] == 3 and stats["statuses"] == {"completed": 3}
    assert sorted(stats["submitted"]) == sorted(_ids(run_dir))  # custom_id = job id
    assert set(stats["submitted"].values()) == {1}
    _check_once_each(run_dir, sim, count)
    log = log_table(run_dir, ["provider_batch_id", "cost_usd", "cost_source"])
    assert log.num_rows == count and log["provider_batch_id"].null_count == 0
    assert len(set(log["provider_batch_id"].to_pylist())) == 3
    assert set(log["cost_source"].to_pylist()) == {"usage"}
    spent = pc.sum(log["cost_usd"]).as_py()
    assert math.isclose(spent, _usage_cost_at_batch_rate(run_dir), rel_tol=1e-9)
    batch_quote = quoted["batch_quote"]["expected_usd"]
    assert abs(batch_quote - spent) <= 0.05 * spent, (batch_quote, spent)
    assert math.isclose(quoted["quote"]["expected_usd"], 2 * batch_quote, rel_tol=1e-6)
    state = json.loads((run_dir / "state" / "batches.json").read_text())
    assert [p["jobs"] for p in state["parts"]] == parts
    assert all(p["collected"] and p["file_id"] and p["batch_id"] for p in state["parts"])
    report = run_cli(["report", str(run_dir), "--format", "json"], env=cli_env())
    assert report.code == 0, report.output
    print(f"\n{count:,} jobs via batch: spent ${spent:.4f}, batch quote ${batch_quote:.4f}")


CRASH_POINTS = [
    "batch:after_intent:2",  # part 2's intent recorded, nothing uploaded
    "batch:after_upload:2",  # part 2 uploaded, its file id not recorded
    "batch:after_create:2",  # part 2's batch created, its id not recorded
    "batch:poll:4",  # following
    "batch:collect_line:150",  # mid-collection: an image saved, its row not appended
]


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_crash_anywhere_then_resume_submits_nothing_twice_and_loses_nothing(
    tmp_path: Path, make_sim, crash_at: str
) -> None:
    sim = make_sim(batch_seconds=0.3)
    jobs = _jobs(tmp_path, 500)
    run_dir = tmp_path / "run"
    crashed = run_cli(
        _run(jobs, run_dir, sim, "--batch-max-requests", "200", "--quiet"),
        env=cli_env(crash_at=crash_at),
    )
    assert crashed.code == faultpoints.EXIT_CODE, crashed.output
    resumed = run_cli(_resume(run_dir), env=cli_env())
    assert resumed.code == 0, resumed.output
    stats = batch_stats(sim)
    assert stats["batches_created"] == 3, stats  # never a batch twice
    assert stats["files_uploaded"] == 3, stats  # an upload whose id was lost is found again
    assert set(stats["submitted"].values()) == {1} and len(stats["submitted"]) == 500
    _check_once_each(run_dir, sim, 500)
    assert log_table(run_dir, ["job_id"]).num_rows == 500  # no duplicate rows


def test_kill_9_while_following_then_collect_reattaches(tmp_path: Path, make_sim) -> None:
    sim = make_sim(batch_seconds=3.0)
    jobs = _jobs(tmp_path, 300)
    run_dir = tmp_path / "run"
    cli = Cli(_run(jobs, run_dir, sim, "--batch-max-requests", "100", "--quiet"), env=cli_env())
    wait_until(lambda: batch_stats(sim)["batches_created"] == 3, what="3 batches", cli=cli)
    assert cli.kill_hard().code == -9
    collected = run_cli(["collect", str(run_dir), *POLL, "--quiet"], env=cli_env())
    assert collected.code == 0, collected.output
    assert batch_stats(sim)["batches_created"] == 3
    _check_once_each(run_dir, sim, 300)


def test_ctrl_c_stops_following_without_cancelling_and_detach_exits_at_once(
    tmp_path: Path, make_sim
) -> None:
    sim = make_sim(batch_seconds=2.0)
    jobs = _jobs(tmp_path, 120)
    run_dir = tmp_path / "run"
    cli = Cli(_run(jobs, run_dir, sim, "--batch-max-requests", "60"), env=cli_env())
    wait_until(lambda: "in_progress" in cli.stdout_so_far(), what="a batch running", cli=cli)
    cli.proc.send_signal(signal.SIGINT)
    stopped = cli.finish()
    assert stopped.code == 3, stopped.output
    assert "nothing was cancelled" in stopped.stdout and "batchgen collect" in stopped.stdout
    assert batch_stats(sim)["cancels"] == 0
    collected = run_cli(["collect", str(run_dir), *POLL, "--quiet"], env=cli_env())
    assert collected.code == 0, collected.output
    _check_once_each(run_dir, sim, 120)

    detached_dir = tmp_path / "detached"
    jobs2 = _jobs(tmp_path, 40, "more.txt", prefix="a windy moor")
    detached = run_cli(_run(jobs2, detached_dir, sim, "--detach"), env=cli_env())
    assert detached.code == 0, detached.output
    assert f"batchgen collect {detached_dir}" in detached.stdout
    assert ok_counts(detached_dir) == {}
    manifest = json.loads((detached_dir / "run.json").read_text())
    assert manifest["sessions"][-1]["how"] == "detached"
    assert run_cli(["collect", str(detached_dir), *POLL], env=cli_env()).code == 0
    assert len(ok_counts(detached_dir)) == 40


def test_sighup_stops_following_as_ctrl_c_does(tmp_path: Path, make_sim) -> None:
    """One signal watcher (runner/signals.py) for every session: the Batch API's following
    stops on SIGHUP (the terminal closed, ssh dropped) as on Ctrl-C, instead of dying by it
    (SIGHUP's default action: exit -1, no final flush)."""
    sim = make_sim(batch_seconds=2.0)
    jobs = _jobs(tmp_path, 60)
    run_dir = tmp_path / "run"
    cli = Cli(_run(jobs, run_dir, sim), env=cli_env())
    wait_until(lambda: "in_progress" in cli.stdout_so_far(), what="a batch running", cli=cli)
    cli.proc.send_signal(signal.SIGHUP)
    stopped = cli.finish()
    assert stopped.code == 3, stopped.output
    assert "SIGHUP: stopped following" in stopped.stdout, stopped.output
    assert "nothing was cancelled" in stopped.stdout and "[yellow]" not in stopped.output
    assert batch_stats(sim)["cancels"] == 0
    collected = run_cli(["collect", str(run_dir), *POLL, "--quiet"], env=cli_env())
    assert collected.code == 0, collected.output
    _check_once_each(run_dir, sim, 60)


def _expected_pending(run_dir: Path, sim: Any) -> set[str]:
    state = json.loads((run_dir / "state" / "batches.json").read_text())
    ids = {
        p["part"]: (run_dir / "state" / "batch" / f"part-{p['part']:05d}.ids").read_text().split()
        for p in state["parts"]
    }
    return set(ids[1]) | set(ids[2][len(ids[2]) // 2 :])


@pytest.mark.parametrize("via", ["batch", "live"])
def test_expired_and_failed_batches_and_errored_lines_leave_exactly_their_jobs_pending(
    tmp_path: Path, make_sim, via: str
) -> None:
    # batch 1 fails validation, batch 2 expires half-way; in batch 3 two lines fail once
    sim = make_sim(batch_seconds=0.4, batch_faults="fail=1,expire=2")
    prompts = [f"a snowy pass {i:03d}" for i in range(90)]
    prompts[70] = "[sim:server*1] a snowy pass 070"
    prompts[80] = "[sim:server*1] a snowy pass 080"
    jobs = write_text_jobs(tmp_path / "jobs.txt", prompts)
    run_dir = tmp_path / "run"
    first = run_cli(
        _run(jobs, run_dir, sim, "--batch-max-requests", "30", "--quiet"), env=cli_env()
    )
    assert first.code == 3, first.output
    assert "pending" in first.stdout and "batchgen resume" in first.stdout
    from tests.runhelpers import job_ids_by_prompt

    by_prompt = job_ids_by_prompt(run_dir)
    errored = {by_prompt[prompts[70]], by_prompt[prompts[80]]}
    states = job_states(run_dir)
    not_done = states.ids(PENDING) | states.ids(RETRYABLE_FAILED)
    assert not_done == _expected_pending(run_dir, sim) | errored
    assert states.ids(RETRYABLE_FAILED) == errored
    assert len(states.ids(DONE)) == 90 - len(not_done)
    billed_before = dict(batch_stats(sim)["billed"])
    assert not set(billed_before) & not_done

    live_before = dict(sim.stats.snapshot(timeline=False)["by_prompt"])
    resumed = run_cli(_resume(run_dir, "--via", via), env=cli_env())
    assert resumed.code == 0, resumed.output
    counts = ok_counts(run_dir)
    assert len(counts) == 90 and set(counts.values()) == {1}
    stats = batch_stats(sim)
    live_after = sim.stats.snapshot(timeline=False)["by_prompt"]
    sent_live = {by_prompt[p] for p, k in live_after.items() if k > live_before.get(p, 0)}
    if via == "batch":
        assert sent_live == set()
        assert {j for j, k in stats["submitted"].items() if k == 2} == not_done
        assert set(stats["billed"].values()) == {1}
    else:
        assert sent_live == not_done  # finished on the live API, exactly those
        assert stats["billed"] == billed_before
    assert image_files(run_dir) == set(logged_images(run_dir))


def test_deadline_cancels_a_slow_batch_and_finishes_the_rest_live_paying_once(
    tmp_path: Path, make_sim
) -> None:
    sim = make_sim(batch_seconds=20.0)  # far slower than the deadline
    jobs = _jobs(tmp_path, 200)
    run_dir = tmp_path / "run"
    deadline_s = 6.0
    started = time.time()
    args = ["--deadline", f"{deadline_s}s", "--assume-latency", "0.01", "--concurrency", "16"]
    done = run_cli(_run(jobs, run_dir, sim, *args), env=cli_env())
    assert done.code == 0, done.output
    assert "deadline" in done.stdout
    stats = batch_stats(sim)
    assert stats["cancels"] == 1 and stats["statuses"] == {"cancelled": 1}
    from tests.runhelpers import job_ids_by_prompt

    by_prompt = job_ids_by_prompt(run_dir)
    live = {by_prompt[p] for p in sim.stats.snapshot(timeline=False)["by_prompt"]}
    batch = set(stats["billed"])  # the cancelled batch's partial output, collected first
    assert batch and live and not batch & live  # no job paid twice
    assert batch | live == set(by_prompt.values())
    assert set(sim.stats.snapshot(timeline=False)["by_prompt"].values()) == {1}
    _check_once_each(run_dir, sim, 200)
    log = log_table(run_dir, ["status", "provider_batch_id", "started_at", "finished_at"])
    ok = log.filter(pc.equal(log["status"], "ok"))
    assert set(
        ok.filter(pc.is_valid(ok["provider_batch_id"]))["provider_batch_id"].to_pylist()
    ) <= {json.loads((run_dir / "state" / "batches.json").read_text())["parts"][0]["batch_id"]}
    live_rows = ok.filter(pc.is_null(ok["provider_batch_id"]))
    deadline_at = json.loads((run_dir / "run.json").read_text())["settings"]["batch"]["deadline_at"]
    live_began = pc.min(live_rows["started_at"]).as_py().timestamp() - deadline_at
    last = pc.max(log["finished_at"]).as_py().timestamp() - deadline_at
    # the cut-over came before the deadline (the live estimate is tiny here; the slack is the
    # cancel landing, the partial output's collection and the live session's start), and the
    # rest took only the live time it needed after that
    assert live_began <= 1.0, live_began
    assert time.time() - started < 60
    print(
        f"\ndeadline {deadline_s}s: {len(batch)} from the batch, {len(live)} live; first live "
        f"request {live_began:+.2f}s from the deadline, last result {last:+.2f}s"
    )


def test_cancel_command_cancels_open_batches_and_resume_finishes_the_rest(
    tmp_path: Path, make_sim
) -> None:
    sim = make_sim(batch_seconds=30.0)
    jobs = _jobs(tmp_path, 60)
    run_dir = tmp_path / "run"
    assert (
        run_cli(
            _run(jobs, run_dir, sim, "--detach", "--batch-max-requests", "30"), env=cli_env()
        ).code
        == 0
    )
    cancelled = run_cli(["cancel", str(run_dir)], env=cli_env())
    assert cancelled.code == 0, cancelled.output
    assert "cancelled 2 batch(es)" in cancelled.stdout
    assert batch_stats(sim)["cancels"] == 2
    # the batches were slow so that the cancel found them open; the new ones need not be
    sim.update(batch_seconds=0.3)
    resumed = run_cli(_resume(run_dir), env=cli_env())
    assert resumed.code == 0, resumed.output
    assert len(ok_counts(run_dir)) == 60 and set(ok_counts(run_dir).values()) == {1}
    assert set(batch_stats(sim)["billed"].values()) == {1}
    assert SECRET_KEY not in cancelled.output + resumed.output


def test_max_cost_reserves_each_input_file_before_it_is_submitted(tmp_path: Path, make_sim) -> None:
    sim = make_sim(batch_seconds=0.2)
    jobs = _jobs(tmp_path, 100)
    run_dir = tmp_path / "run"
    # a job's worst case at the batch rate is ~$0.0055 (272 output tokens at $20/M, its
    # prompt's bytes at $2.5/M): $0.30 holds 54 of them
    capped = run_cli(
        _run(jobs, run_dir, sim, "--batch-max-requests", "40", "--max-cost", "0.30", "--quiet"),
        env=cli_env(),
    )
    assert capped.code == 3, capped.output
    assert "--max-cost" in capped.stdout
    stats = batch_stats(sim)
    submitted = len(stats["submitted"])
    assert stats["batches_created"] == 2 and 40 < submitted < 60  # the second file cut short
    log = log_table(run_dir, ["status", "error_class", "cost_usd"])
    skipped = log.filter(pc.equal(log["status"], "skipped"))
    assert set(skipped["error_class"].to_pylist()) == {"budget"}
    assert skipped.num_rows == 100 - submitted
    assert pc.sum(log["cost_usd"]).as_py() <= 0.30
    resumed = run_cli(_resume(run_dir, "--max-cost", "1.00"), env=cli_env())
    assert resumed.code == 0, resumed.output
    assert len(ok_counts(run_dir)) == 100
    assert set(batch_stats(sim)["submitted"].values()) == {1}
