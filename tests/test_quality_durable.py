"""`batchgen score` under kill -9: the real CLI in a subprocess, the simulator's judge over real
HTTP counting every image it judged (by sha256).

* A crash point right after the k-th verdict is on disk, one request at a time: the next
  `score` judges exactly the rest — no image twice, none missed.
* SIGKILL at seeded random instants with 4 requests in flight: none missed, one verdict per
  image in the table, and an image judged twice only when `score` said it was in flight at
  the kill (its answer was lost with the process).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from batchgen.faultpoints import EXIT_CODE
from batchgen.quality.store import read_scores
from tests.runhelpers import Cli, cli_env, run_cli, sim_flags, wait_until, write_text_jobs

pytestmark = pytest.mark.timeout(180)

SEED = 20_261_201


def _run(tmp_path: Path, sim, jobs: int) -> Path:
    run_dir = tmp_path / "run"
    path = write_text_jobs(tmp_path / "jobs.txt", (f"studio photo {i}" for i in range(jobs)))
    done = run_cli(
        [
            "run",
            str(path),
            "--run-dir",
            str(run_dir),
            "--model",
            "gpt-image-1",
            "--size",
            "1024x1024",
            "--quality",
            "low",
            *sim_flags(sim),
            "--yes",
            "--quiet",
        ],
        env=cli_env(),
    )
    assert done.code == 0, done.output
    return run_dir


def _judged(sim) -> dict[str, int]:
    return sim.stats.snapshot(timeline=False)["chat"]["judged_by_sha256"]


def _check_complete(run_dir: Path, jobs: int) -> None:
    raw = read_scores(run_dir, latest=False).to_pylist()
    ok = [r for r in raw if r["status"] == "ok"]
    keys = [(r["image_path"], r["image_sha256"]) for r in ok]
    assert len(keys) == len(set(keys)) == jobs  # none missed, none stored twice
    assert not [p for p in (run_dir / "scores").iterdir() if p.name.startswith(".")]


def test_crash_after_a_saved_verdict_then_score_again_judges_exactly_the_rest(
    tmp_path: Path, make_sim
) -> None:
    jobs = 60
    sim = make_sim(variants=10**9, latency_mean=0.005)
    run_dir = _run(tmp_path, sim, jobs)
    args = ["score", str(run_dir), "--judge", "gpt-4o-mini", "--concurrency", "1", *sim_flags(sim)]
    for k in (17, 9):
        crashed = run_cli(args, env=cli_env(crash_at=f"score:after_save:{k}"))
        assert crashed.code == EXIT_CODE, crashed.output
    assert sum(_judged(sim).values()) == 17 + 9
    done = run_cli(args, env=cli_env())
    assert done.code == 0, done.output
    assert f"scored {jobs - 26} images, 26 already scored" in done.output
    assert "judged (and billed) twice" not in done.output
    judged = _judged(sim)
    assert len(judged) == jobs and set(judged.values()) == {1}
    _check_complete(run_dir, jobs)


def test_kill_9_at_random_instants_then_score_misses_none_and_says_what_may_be_twice(
    tmp_path: Path, make_sim
) -> None:
    jobs = 150
    sim = make_sim(variants=10**9, latency_mean=0.03, latency_jitter=0.01, seed=SEED)
    run_dir = _run(tmp_path, sim, jobs)
    rng = random.Random(SEED)
    args = ["score", str(run_dir), "--judge", "gpt-4o-mini", "--concurrency", "4", *sim_flags(sim)]
    for _ in range(3):
        before = sum(_judged(sim).values())
        if before >= jobs - 10:
            break
        target = before + rng.randint(5, 30)
        cli = Cli(args, env=cli_env())
        wait_until(
            lambda t=target: sum(_judged(sim).values()) >= t,
            what=f"{target} images judged",
            cli=cli,
            timeout=60,
        )
        cli.kill_hard()
    done = run_cli(args, env=cli_env(), timeout=120)
    assert done.code == 0, done.output
    announced = _twice(done.output)  # in all, over the killed sessions
    judged = _judged(sim)
    assert len(judged) == jobs  # none missed
    twice = sum(n - 1 for n in judged.values())
    assert twice <= announced, (twice, announced, done.output)
    _check_complete(run_dir, jobs)


def _twice(output: str) -> int:
    found = re.search(
        r"(\d+) images? (?:was|were) in flight when a `score` of this run was killed", output
    )
    return int(found.group(1)) if found else 0
