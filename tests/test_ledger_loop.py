"""Another process holding a long write lock on the spend ledger (`BEGIN IMMEDIATE`: a
`batchgen ledger rebuild`, a backup, a sqlite3 shell) must not stall the run: the ledger
waits (its busy timeout is 30 s) off the event loop, requests keep being sent and answered
meanwhile, and once the lock is gone every priced row is in the ledger, as before. Real CLI
against the simulator with latency; answers are counted, not wall time."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pyarrow.compute as pc
import pytest

from batchgen.money.ledger import Ledger
from batchgen.runlog.reader import read_log
from tests.runhelpers import Cli, cli_env, sim_flags, wait_until, write_jsonl_jobs

JOBS = 60
CONCURRENCY = 3


def _ledger_rows(path: Path, run_id: str) -> list[tuple[str, int, float]]:
    with sqlite3.connect(path) as con:
        q = "SELECT job_id, attempt, cost_usd FROM attempts WHERE run_id = ? ORDER BY 1, 2"
        return [(str(j), int(a), float(c)) for j, a, c in con.execute(q, (run_id,))]


UNDER_BUDGET = pytest.param(
    ["--monthly-budget", "100"],
    marks=pytest.mark.xfail(
        strict=True,
        reason="under a monthly budget each request's hold and release are ledger writes "
        "made in the event loop (batchgen/money/budget.py -> monthly.py), and a priced row "
        "must reach the ledger before its hold is released: moving those off the loop is a "
        "change of the budget's own code, not of the ledger's call sites",
    ),
    id="monthly-budget",
)


@pytest.mark.parametrize("budget", [pytest.param([], id="no-budget"), UNDER_BUDGET])
def test_a_held_ledger_lock_does_not_stop_requests(
    tmp_path: Path, make_sim, budget: list[str]
) -> None:
    sim = make_sim(latency_mean=0.05, seed=7)
    ledger = tmp_path / "ledger.sqlite"
    Ledger.open(ledger).close()  # made before: the lock is taken on the file the run uses
    jobs = write_jsonl_jobs(
        tmp_path / "jobs.jsonl",
        ({"id": f"l{i:02d}", "prompt": f"a lighthouse {i}"} for i in range(JOBS)),
    )
    run = tmp_path / "run"
    env = {**cli_env(), "BATCHGEN_LEDGER": str(ledger)}
    args = ["run", str(jobs), "--run-dir", str(run), *sim_flags(sim)]
    cli = Cli([*args, "--concurrency", str(CONCURRENCY), "--yes", "--quiet", *budget], env=env)
    wait_until(lambda: sim.stats["ok"] >= 3, what="three answers before the lock", cli=cli)

    other = sqlite3.connect(ledger, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # held until the run has gone on without the ledger
    try:
        at_lock = sim.stats["ok"]
        # blocked, the loop sends nothing after its next priced row: at most the requests in
        # flight are answered. Not blocked, the run goes on (well under the 30 s timeout).
        wait_until(
            lambda: sim.stats["ok"] >= at_lock + 4 * CONCURRENCY,
            what=f"{4 * CONCURRENCY} answers while another process holds the ledger",
            timeout=10,
            cli=cli,
        )
    finally:
        other.execute("ROLLBACK")
        other.close()
    done = cli.finish(timeout=120)
    assert done.code == 0, done.output

    # what is recorded is unchanged: each priced attempt of the log, once, at its cost
    run_id = str(json.loads((run / "run.json").read_text())["run_id"])
    log = read_log(run, ["job_id", "attempt", "cost_usd"])
    log = log.filter(pc.fill_null(pc.greater(log["cost_usd"], 0), False))
    want = sorted((r["job_id"], r["attempt"], r["cost_usd"]) for r in log.to_pylist())
    assert len(want) == JOBS
    got = _ledger_rows(ledger, run_id)
    assert [(j, a) for j, a, _ in got] == [(j, a) for j, a, _ in want]
    assert [c for *_, c in got] == pytest.approx([c for *_, c in want])
