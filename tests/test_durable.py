"""Durable runs under kill -9: the real CLI in a subprocess, the simulator over real HTTP.

Kills land at seeded random instants, measured in requests the simulator has served (not in
wall time), so a slow machine shifts when they happen but not what is being tested.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from batchgen import faultpoints
from batchgen.runner.recovery import IN_FLIGHT_AT_CRASH
from tests.runhelpers import (
    MODEL_FLAGS,
    Cli,
    check_log_readable,
    cli_env,
    image_files,
    job_ids_by_prompt,
    log_table,
    logged_images,
    ok_counts,
    ok_rows,
    run_cli,
    sim_flags,
    wait_until,
    write_text_jobs,
)

pytestmark = pytest.mark.timeout(120)

CONCURRENCY = 8
KILLS = 5
SEED = 20_240_611


def _served(sim) -> int:
    return sim.stats["ok"]


def _requested(sim) -> dict[str, int]:
    return dict(sim.stats.snapshot(timeline=False)["by_prompt"])


def _jobs_with_images(run_dir: Path) -> set[str]:
    return {name.removeprefix("images/").rsplit("_", 1)[0] for name in image_files(run_dir)}


@pytest.mark.parametrize(
    ("count", "kill_after"),
    [
        # the same seeded kill points (their sum is 1,055 answers); fewer jobs after the last
        pytest.param(1_200, (60, 360), id="1200"),
        pytest.param(2_000, (60, 360), id="2000", marks=pytest.mark.slow),
    ],
)
def test_kill_9_at_random_instants_then_resume_pays_each_saved_image_once(
    tmp_path: Path, make_sim, count: int, kill_after: tuple[int, int]
) -> None:
    started = time.monotonic()
    # ~160 answers/s: the seeded kill points (60-360 answers into a session) fall both before
    # and after the writer's first flush (1 s), so both recovery paths are exercised
    sim = make_sim(latency_mean=0.05, latency_jitter=0.01, seed=SEED)
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"durable job {i:04d}" for i in range(count)))
    run_dir = tmp_path / "run"
    rng = random.Random(SEED)
    common = [*sim_flags(sim), "--concurrency", str(CONCURRENCY), "--yes", "--quiet"]
    first = ["run", str(jobs), "--run-dir", str(run_dir), *MODEL_FLAGS, *common]
    resume = ["resume", str(run_dir), *common]
    id_of: dict[str, str] = {}
    sent_again_after_save: list[str] = []
    in_flight_at_kills: list[int] = []

    def session(args: list[str], *, kill: bool, crash_at: str | None = None) -> int:
        """One CLI session; with ``kill``, SIGKILL it once the simulator has served a seeded
        random number of requests more. Checks that no job whose image was on disk before
        the session starts is requested again by it."""
        before_images = _jobs_with_images(run_dir) if run_dir.exists() else set()
        before_requests = _requested(sim)
        cli = Cli(args, env=cli_env(crash_at=crash_at))
        if kill:
            target = _served(sim) + rng.randint(*kill_after)
            wait_until(lambda: _served(sim) >= target, what=f"{target} served", cli=cli)
            stats = sim.stats.snapshot(timeline=False)
            # received and not answered: requests a killed client dropped stay so for good
            unanswered = stats["received"] - sum(stats["outcomes"].values())
            in_flight_at_kills.append(unanswered - sum(in_flight_at_kills))
            code = cli.kill_hard().code
        else:
            code = cli.finish().code
        if not id_of:
            id_of.update(job_ids_by_prompt(run_dir))
        after = _requested(sim)
        again = {id_of[p] for p, k in after.items() if k > before_requests.get(p, 0)}
        sent_again_after_save.extend(sorted(again & before_images))
        return code

    assert session(first, kill=True) == -9
    assert session(resume, kill=True) == -9
    # the next resume dies in its first act, the compaction of the killed sessions' parts:
    # after the compact file's rename, before its sources are deleted
    crash = "compact:after_rename:1"
    assert session(resume, kill=False, crash_at=crash) == faultpoints.EXIT_CODE
    assert session(resume, kill=True) == -9
    assert session(resume, kill=True) == -9
    assert session(resume, kill=True) == -9
    final = run_cli(resume, env=cli_env())
    assert final.code == 0, final.output

    assert sent_again_after_save == []  # never paid twice for an image already saved
    counts = ok_counts(run_dir)
    assert sorted(counts) == sorted(id_of.values())  # every job of the file, and only them
    assert set(counts.values()) == {1}  # exactly one successful result each
    check_log_readable(run_dir)
    logged = logged_images(run_dir)
    assert len(logged) == len(set(logged)) == count
    assert image_files(run_dir) == set(logged)
    assert not list((run_dir / "images").glob(".*"))  # recovery removed torn temp images

    # served twice only if in flight at a kill: at most `concurrency` requests per kill
    served = _served(sim)
    excess = served - count
    assert 0 <= excess <= CONCURRENCY * KILLS, (served, in_flight_at_kills)
    requested = _requested(sim)
    assert max(requested.values()) <= 1 + KILLS
    # no faults were injected: every answer was a success; the rest of what was received
    # are requests whose client died before the simulator answered (never billed)
    assert set(sim.stats.snapshot(timeline=False)["outcomes"]) == {"ok"}
    assert sum(requested.values()) == sim.stats.received >= served
    log = log_table(run_dir, ["job_id", "error_code", "cost_source", "session"])
    flagged = set(log.filter(pc.equal(log["error_code"], IN_FLIGHT_AT_CRASH))["job_id"].to_pylist())
    recorded = len(flagged)
    recovered = pc.sum(pc.equal(log["cost_source"], "recovered")).as_py() or 0
    # and the log knows which: every job served more than once was flagged "possibly billed
    # twice" by a resume, so the report's count bounds the real excess
    served_twice = {id_of[p] for p, k in requested.items() if k > 1}
    assert served_twice <= flagged
    assert excess <= recorded
    print(  # the numbers for the report (pytest -s)
        f"\nkill -9 x{KILLS} + compaction crash: {count} jobs, served {served} "
        f"(excess {excess}, bound {CONCURRENCY * KILLS}); sim in flight at kills "
        f"{in_flight_at_kills}; in_flight_at_crash rows {recorded}; adopted images {recovered}; "
        f"sessions {pc.max(log['session']).as_py()}; {time.monotonic() - started:.1f}s"
    )


def test_kill_between_image_write_and_its_row_adopts_the_image_without_a_new_request(
    tmp_path: Path, make_sim
) -> None:
    sim = make_sim(latency_mean=0.02, seed=3)
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"orphan test {i:02d}" for i in range(60)))
    run_dir = tmp_path / "run"
    env = cli_env(crash_at="image:before_row:25")
    crashed = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--concurrency",
            "4",
            "--yes",
            "--quiet",
        ],
        env=env,
    )
    assert crashed.code == faultpoints.EXIT_CODE, crashed.output
    id_of = job_ids_by_prompt(run_dir)
    orphans = _jobs_with_images(run_dir) - set(ok_counts(run_dir))
    # at least the 25th image, saved a moment before the process died, has no row
    assert len(orphans) >= 1
    before = _requested(sim)

    resumed = run_cli(["resume", str(run_dir), "--yes", "--quiet"], env=cli_env())
    assert resumed.code == 0, resumed.output
    adopted = f"{len(orphans)} job{'' if len(orphans) == 1 else 's'}"
    assert f"adopted {adopted} whose images were saved" in resumed.stdout

    after = _requested(sim)
    sent_now = {id_of[p] for p, k in after.items() if k > before.get(p, 0)}
    assert not sent_now & orphans  # adopted, not requested again
    rows = ok_rows(run_dir)
    source = dict(zip(rows["job_id"].to_pylist(), rows["cost_source"].to_pylist(), strict=True))
    assert {j for j, s in source.items() if s == "recovered"} == orphans
    assert set(ok_counts(run_dir).values()) == {1}
    assert len(ok_counts(run_dir)) == 60
    assert image_files(run_dir) == set(logged_images(run_dir))
    # the orphans' own requests were served exactly once over both sessions
    assert all(after[p] == 1 for p, j in id_of.items() if j in orphans)
    check_log_readable(run_dir)
