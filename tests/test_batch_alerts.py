"""Budget alerts (50 / 80 / 100 % of a monthly budget, ``--on-budget``) fire for ``--via
batch`` runs too, when the collection records the batch's spend in the ledger: once per
threshold and month, whichever process collects. Real ``batchgen`` processes against the
simulator's Batch API over HTTP, one ledger file; the hook appends the percent it was told to
a file, so what it was run with is read back, not assumed.

10 jobs cost ~$0.0545 at the batch rate (tests/test_batch_monthly_hold.py): 68 % of $0.08.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from batchgen.money.ledger import ALL, NANO, Ledger, month_of
from batchgen.money.monthly import THRESHOLDS
from tests.runhelpers import cli_env, ok_counts, run_cli, wait_until
from tests.test_batch import POLL, _jobs, _run

pytestmark = pytest.mark.timeout(240)

BUDGET = 0.08
JOBS = 10


def _hook(events: Path) -> str:
    return (
        f"{sys.executable} -c \"import os; open({str(events)!r}, 'a').write("
        "os.environ['BATCHGEN_BUDGET_PERCENT'] + chr(10))\""
    )


def _spent_percent(ledger: Path) -> float:
    led = Ledger.open(ledger, create=False)
    try:
        return led.spent_nano(month_of(time.time()), ALL) / NANO / BUDGET * 100
    finally:
        led.close()


def _expected(ledger: Path) -> list[str]:
    """The thresholds the month's spend has passed (read from the ledger)."""
    spent = _spent_percent(ledger)
    assert 50 <= spent < 100, spent  # the test's premise: at least one alert is due
    return [str(p) for p in THRESHOLDS if spent >= p]


def _events(events: Path, count: int) -> list[str]:
    wait_until(
        lambda: events.exists() and len(events.read_text().splitlines()) >= count,
        what=f"{count} hook event(s)",
    )
    return sorted(events.read_text().splitlines())


def test_a_batch_run_alerts_when_its_collected_spend_passes_a_threshold(
    tmp_path: Path, make_sim: Any
) -> None:
    sim = make_sim(batch_seconds=0.3, variants=10**9)
    ledger = tmp_path / "ledger.sqlite"
    events = tmp_path / "events.txt"
    jobs = _jobs(tmp_path, JOBS, prefix="a lit lantern")
    flags = ["--ledger", str(ledger), "--monthly-budget", f"{BUDGET}", "--on-budget"]
    done = run_cli([*_run(jobs, tmp_path / "run", sim), *flags, _hook(events)], env=cli_env())
    assert done.code == 0, done.output
    assert len(ok_counts(tmp_path / "run")) == JOBS
    expected = _expected(ledger)
    assert _events(events, len(expected)) == expected
    text = " ".join(done.output.split())
    assert "budget alert: 50 % of the monthly budget" in text
    assert "budget alert: 100 %" not in text


def test_a_detached_batch_alerts_once_from_the_collect_that_records_its_spend(
    tmp_path: Path, make_sim: Any
) -> None:
    sim = make_sim(batch_seconds=0.3, variants=10**9)
    ledger = tmp_path / "ledger.sqlite"
    events = tmp_path / "events.txt"
    # the hook is config.toml's (the budget is run.json's); collect is given no --on-budget
    config = tmp_path / "config"
    (config / "batchgen").mkdir(parents=True)
    (config / "batchgen" / "config.toml").write_text(f"on_budget = {json.dumps(_hook(events))}\n")
    env = {**cli_env(), "XDG_CONFIG_HOME": str(config)}
    jobs = _jobs(tmp_path, JOBS, prefix="a dim lantern")
    flags = ["--ledger", str(ledger), "--monthly-budget", f"{BUDGET}", "--detach"]
    detached = run_cli([*_run(jobs, tmp_path / "run", sim), *flags], env=env)
    assert detached.code == 0, detached.output
    assert _spent_percent(ledger) == 0 and not events.exists()  # held, not spent: no alert
    collected = run_cli(["collect", str(tmp_path / "run"), *POLL], env=env)
    assert collected.code == 0, collected.output
    assert len(ok_counts(tmp_path / "run")) == JOBS
    expected = _expected(ledger)
    assert _events(events, len(expected)) == expected
    assert "budget alert: 50 % of the monthly budget" in " ".join(collected.output.split())
    # a second collect (nothing left open) and a second batch run below the next threshold
    # report nothing again: the ledger remembers the month's alerts
    again = run_cli(["collect", str(tmp_path / "run"), *POLL], env=env)
    assert again.code == 0, again.output
    one = _jobs(tmp_path, 1, "one.txt", prefix="a far lantern")
    more = run_cli([*_run(one, tmp_path / "run2", sim), *flags[:-1]], env=env)
    assert more.code == 0, more.output
    assert _expected(ledger) == expected  # still below the next threshold
    assert "budget alert" not in again.output + more.output
    assert sorted(events.read_text().splitlines()) == expected
    # what the ledger recorded as fired: one row per threshold passed
    with sqlite3.connect(ledger) as conn:
        fired = conn.execute("SELECT percent FROM alerts ORDER BY percent").fetchall()
    assert [str(p) for (p,) in fired] == expected


def test_collect_runs_its_own_on_budget_command_at_the_threshold(
    tmp_path: Path, make_sim: Any
) -> None:
    """A detached batch run's alerts come from the `collect --on-budget CMD` that records
    its spend, with no config.toml hook (XDG_CONFIG_HOME empty)."""
    sim = make_sim(batch_seconds=0.3, variants=10**9)
    ledger = tmp_path / "ledger.sqlite"
    events = tmp_path / "events.txt"
    env = {**cli_env(), "XDG_CONFIG_HOME": str(tmp_path / "no-config")}
    jobs = _jobs(tmp_path, JOBS, prefix="a pale lantern")
    flags = ["--ledger", str(ledger), "--monthly-budget", f"{BUDGET}", "--detach"]
    detached = run_cli([*_run(jobs, tmp_path / "run", sim), *flags], env=env)
    assert detached.code == 0, detached.output
    assert not events.exists()
    collect = ["collect", str(tmp_path / "run"), *POLL, "--on-budget", _hook(events)]
    collected = run_cli(collect, env=env)
    assert collected.code == 0, collected.output
    assert len(ok_counts(tmp_path / "run")) == JOBS
    expected = _expected(ledger)
    assert _events(events, len(expected)) == expected
    # the command (it may hold a webhook's secret) is not recorded in run.json
    assert _hook(events) not in (tmp_path / "run" / "run.json").read_text()
