"""``--max-cost`` bounds a run directory's images and its judging together, on every kind of
session: here a ``--via batch`` resume after ``batchgen score``, through the real CLI against
the simulator's Batch and chat APIs over HTTP.

The judge is priced high (a price table merged over the shipped one) so that what judging
cost is worth many jobs at the batch rate: a resume that left it out of the budget would
submit jobs the cap has no room for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batchgen.money.spent import spent
from tests.runhelpers import MODEL_FLAGS, cli_env, ok_counts, run_cli, write_text_jobs
from tests.test_batch import POLL, batch_stats

pytestmark = pytest.mark.timeout(240)

# the judge at 1,000x gpt-4o-mini's price: a verdict costs cents, a batch job ~$0.0055 at most
DEAR_JUDGE = """\
[models."gpt-4o-mini"]
billing = "chat"
input_per_1m = 150.0
output_per_1m = 600.0
source = "tests/test_batch_resume_budget.py: a judge priced high on purpose"
as_of = "2026-12-07"
"""


def _last_session(run_dir: Path) -> dict[str, Any]:
    sessions = json.loads((run_dir / "run.json").read_text())["sessions"]
    return dict(sessions[-1])


def test_a_batch_resume_counts_judging_against_max_cost(tmp_path: Path, make_sim: Any) -> None:
    sim = make_sim(batch_seconds=0.2, variants=10**9)
    prices = tmp_path / "prices.toml"
    prices.write_text(DEAR_JUDGE)
    jobs = write_text_jobs(
        tmp_path / "jobs.txt", (f"a quiet harbour number {i:05d}" for i in range(60))
    )
    run_dir = tmp_path / "run"
    env = cli_env()
    # a first batch session stopped by its cap: some jobs done, the rest pending
    first = run_cli(
        [
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
            "--batch-max-requests",
            "20",
            "--max-cost",
            "0.12",
            "--prices",
            str(prices),
            "--yes",
            "--quiet",
        ],
        env=env,
    )
    assert first.code == 3, first.output
    collected = run_cli(["collect", str(run_dir), *POLL, "--quiet"], env=env)
    assert collected.code == 3, collected.output  # the open batches in, the rest pending
    done = len(ok_counts(run_dir))
    assert 0 < done < 60
    scored = run_cli(
        [
            "score",
            str(run_dir),
            "--judge",
            "gpt-4o-mini",
            "--base-url",
            sim.base_url,
            "--prices",
            str(prices),
            "--quiet",
        ],
        env=env,
    )
    assert scored.code == 0, scored.output
    so_far = spent(run_dir)
    assert so_far.judging_usd > 0.05  # worth ten jobs and more at the batch rate
    submitted = len(batch_stats(sim)["submitted"])

    # a cap above the images alone but below images + judging: no room, nothing submitted
    cap = so_far.images_usd + so_far.judging_usd / 2
    capped = run_cli(
        [
            "resume",
            str(run_dir),
            *POLL,
            "--yes",
            "--quiet",
            "--via",
            "batch",
            "--max-cost",
            f"{cap:.6f}",
        ],
        env=env,
    )
    assert capped.code == 3, capped.output
    assert len(batch_stats(sim)["submitted"]) == submitted
    assert len(ok_counts(run_dir)) == done
    assert _last_session(run_dir)["summary"]["spent_total_usd"] == pytest.approx(
        so_far.total, abs=1e-5
    )

    # room for the rest once judging is paid for: the run finishes, images and judging
    # together within the cap
    cap = so_far.total + 60 * 0.006
    finished = run_cli(
        [
            "resume",
            str(run_dir),
            *POLL,
            "--yes",
            "--quiet",
            "--via",
            "batch",
            "--max-cost",
            f"{cap:.6f}",
        ],
        env=env,
    )
    assert finished.code == 0, finished.output
    assert len(ok_counts(run_dir)) == 60
    assert set(batch_stats(sim)["submitted"].values()) == {1}
    assert spent(run_dir).total <= cap + 1e-9
