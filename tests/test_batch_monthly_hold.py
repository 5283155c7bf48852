"""The monthly budget holds for ``--via batch`` runs too: each part's worst case is held in
the spend ledger when it is submitted, kept past a ``--detach`` (the process is gone, the
batch runs on at the provider), and settled with what was billed by the ``collect`` of a later
process. Real ``batchgen`` processes against the simulator's Batch API over HTTP, one ledger
file; the simulator's per-custom_id counters are the ground truth for what was sent.

A job's worst case at the batch rate is ~$0.0055 (tests/test_batch.py): 40 jobs fit in a
$0.30 budget, 80 do not.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from batchgen.money.ledger import ALL, NANO, Ledger, month_of
from batchgen.reports import build_report
from tests.runhelpers import Cli, cli_env, ok_counts, run_cli
from tests.test_batch import POLL, _jobs, _run, batch_stats

pytestmark = pytest.mark.timeout(240)

BUDGET = 0.30


def _flags(ledger: Path) -> list[str]:
    return ["--ledger", str(ledger), "--monthly-budget", f"{BUDGET}", "--quiet"]


def _holds(ledger: Path) -> list[tuple[int, int, str | None]]:
    """(amount nano, pid, owner) of every hold, read as another application would."""
    with sqlite3.connect(ledger) as conn:
        rows = conn.execute("SELECT amount_nano, pid, owner FROM holds").fetchall()
    return [(int(a), int(p), o) for a, p, o in rows]


def _spent(ledger: Path) -> int:
    led = Ledger.open(ledger, create=False)
    try:
        return led.spent_nano(month_of(time.time()), ALL)
    finally:
        led.close()


def _run_id(run_dir: Path) -> str:
    return str(json.loads((run_dir / "run.json").read_text())["run_id"])


def _worst_case_nano(tmp_path: Path, sim: Any, ledger: Path) -> int:
    """One job's worst case, as held: a run of one job, detached, and its hold read."""
    one = _jobs(tmp_path, 1, "one.txt", prefix="a harbour p")
    done = run_cli(_run(one, tmp_path / "probe", sim, "--detach", *_flags(ledger)), env=cli_env())
    assert done.code == 0, done.output
    [(amount, _, _)] = _holds(ledger)
    assert run_cli(["collect", str(tmp_path / "probe"), *POLL], env=cli_env()).code == 0
    assert _holds(ledger) == []
    return amount


def test_two_batch_runs_started_together_cannot_pass_the_monthly_budget(
    tmp_path: Path, make_sim: Any
) -> None:
    sim = make_sim(batch_seconds=0.5, variants=10**9)
    ledger = tmp_path / "ledger.sqlite"
    worst = _worst_case_nano(tmp_path, sim, ledger)
    budget_nano = round(BUDGET * NANO)
    assert 40 * worst <= budget_nano - _spent(ledger) < 80 * worst  # fits one run, not two
    runs = []
    for name in ("a", "b"):
        jobs = _jobs(tmp_path, 40, f"{name}.txt", prefix=f"a harbour {name}")
        args = _run(jobs, tmp_path / name, sim, "--detach", "--batch-max-requests", "5")
        runs.append(Cli([*args, *_flags(ledger)], env=cli_env()))
    ended = [cli.finish() for cli in runs]
    # one run (or both, each in part) is refused by the budget: not started (2) or stopped (3)
    assert sorted(e.code for e in ended)[-1] in (2, 3), [e.output for e in ended]
    refused = next(e for e in ended if e.code != 0)
    assert "--monthly-budget $0.30" in refused.output and "held" in refused.output
    submitted = len(batch_stats(sim)["submitted"]) - 1  # the probe's one job
    held = _holds(ledger)
    # what was submitted is held, by no process (both exited): a collect settles it
    assert {pid for _, pid, _ in held} == {0}
    assert sum(a for a, _, _ in held) == submitted * worst
    assert _spent(ledger) + submitted * worst <= budget_nano
    for name in ("a", "b"):
        if (tmp_path / name / "run.json").exists():
            got = run_cli(["collect", str(tmp_path / name), *POLL, "--quiet"], env=cli_env())
            assert got.code in (0, 3), got.output
    assert _holds(ledger) == []
    done = sum(len(ok_counts(tmp_path / n)) for n in ("a", "b") if (tmp_path / n).exists())
    assert done == submitted
    assert _spent(ledger) <= budget_nano


def test_a_detached_batch_holds_the_month_until_a_later_collect_settles_it(
    tmp_path: Path, make_sim: Any
) -> None:
    sim = make_sim(batch_seconds=0.5, variants=10**9)
    ledger = tmp_path / "ledger.sqlite"
    first = _jobs(tmp_path, 40, "first.txt", prefix="a first meadow")
    args = _run(first, tmp_path / "first", sim, "--detach", *_flags(ledger))
    detached = run_cli(args, env=cli_env())
    assert detached.code == 0, detached.output
    held = sum(a for a, _, _ in _holds(ledger))
    assert held > 0 and _spent(ledger) == 0
    # the detached process is gone; its batch is not: a second run does not fit beside it
    second = _jobs(tmp_path, 40, "second.txt", prefix="a second meadow")
    refused = run_cli(_run(second, tmp_path / "second", sim, *_flags(ledger)), env=cli_env())
    assert refused.code == 2, refused.output
    assert "--monthly-budget $0.30" in refused.output and "held by runs in flight" in refused.output
    assert len(batch_stats(sim)["submitted"]) == 40
    collected = run_cli(["collect", str(tmp_path / "first"), *POLL, "--quiet"], env=cli_env())
    assert collected.code == 0, collected.output
    assert len(ok_counts(tmp_path / "first")) == 40
    # settled with what was billed: the hold is gone, the month's spend is the real cost
    assert _holds(ledger) == []
    assert 0 < _spent(ledger) <= held
    billed = Ledger.open(ledger, create=False)
    try:
        assert abs(billed.run_total(_run_id(tmp_path / "first")) * NANO - _spent(ledger)) < 10
    finally:
        billed.close()


def test_a_batch_run_the_monthly_budget_stops_names_it_and_a_figure_that_finishes_it(
    tmp_path: Path, make_sim: Any
) -> None:
    """A ``--via batch`` run stopped half-way by the monthly budget ended suggesting
    "batchgen resume … --max-cost HIGHER" (there was no --max-cost) and counted the jobs the
    budget kept back among "pending (expired, failed or cancelled batches, errored lines)".
    The ending names the monthly budget, counts those jobs as not sent, and the figure it
    suggests lets a resume finish every job."""
    sim = make_sim(batch_seconds=0.2, variants=10**9)
    ledger = tmp_path / "ledger.sqlite"
    # quality auto: quoted as medium (the run starts: ~$0.17 of $0.30), held as high (~$0.025
    # a job at the batch rate), so the month refuses the part after the 12th job
    jobs = _jobs(tmp_path, 60, prefix="a harbour s")
    run_dir = tmp_path / "run"
    flags = ["--ledger", str(ledger), "--monthly-budget", f"{BUDGET}"]
    args = [
        *_run(jobs, run_dir, sim, "--batch-max-requests", "5", *flags),
        *("--model", "gpt-image-1-mini", "--quality", "auto", "--size", "auto"),
    ]
    stopped = run_cli(args, env=cli_env())
    assert stopped.code == 3, stopped.output
    text = " ".join(stopped.output.split())
    submitted = len(batch_stats(sim)["submitted"])
    assert 0 < submitted < 60
    assert "Monthly budget reached" in text and "--max-cost" not in text, text
    assert f"{60 - submitted} jobs were not sent" in text, text
    assert "pending (expired" not in text, text
    figure = re.search(r"raise --monthly-budget to at least \$([\d.]+)", text)
    assert figure is not None, text
    # every job's worst case as the ledger holds it: the submitted ones' holds, per job
    per_job = sum(a for a, _, _ in _holds(ledger)) / submitted / NANO
    assert float(figure[1]) >= 60 * per_job - 0.01
    # run.json records the stop as the ending told it, and the report names the same budget
    summary = json.loads((run_dir / "run.json").read_text())["sessions"][-1]["summary"]
    assert summary["stopped_by"] == "--monthly-budget", summary
    assert f"raise --monthly-budget to at least ${figure[1]}" in summary["stop_message"]
    advice = build_report(run_dir, image_checks=False).run.recommendations
    [stop] = [a.message for a in advice if a.kind == "stop_budget"]
    assert f"raise --monthly-budget to at least ${figure[1]}" in stop and "--max-cost" not in stop
    resumed = run_cli(
        ["resume", str(run_dir), *POLL, "--yes", "--quiet", *flags[:2], "--monthly-budget",
         figure[1]],
        env=cli_env(),
    )  # fmt: skip
    assert resumed.code == 0, resumed.output
    assert len(ok_counts(run_dir)) == 60
    assert _spent(ledger) <= float(figure[1]) * NANO
