"""Hostile round 4: the monthly budget's reservations shared by processes the ledger cannot
tell apart by host name and pid alone. Containers run with the host's network (or UTS
namespace) share its host name but each has its own pid namespace: a live holder's pid means
nothing in another namespace, so a process there took it for dead and dropped its hold —
money in flight counted as free, and two runs could pass the budget together. Real
processes: the holder runs in a new pid namespace (unshare), the other one here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from batchgen.money.ledger import ALL, NANO, Ledger, Refusal
from batchgen.money.ledgerdata import pid_alive
from tests.runhelpers import STEP_TIMEOUT_S


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False
    )
    return probe.returncode == 0


HOLDER = textwrap.dedent(
    """
    import sys
    from batchgen.money.ledger import ALL, NANO, Ledger
    ledger = Ledger.open(sys.argv[1])
    got = ledger.hold(9 * NANO, {ALL: 10 * NANO}, project="a", ttl_s=3600)
    import os
    print("held" if isinstance(got, int) else "refused", os.getpid(), flush=True)
    sys.stdin.read()  # holds until the test closes its stdin
    """
)


@pytest.mark.skipif(not _can_unshare(), reason="needs unshare --pid (root or user namespaces)")
def test_a_live_hold_from_another_pid_namespace_on_the_same_host_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger.open(path).close()
    # a pid no process of this namespace has: the holder gets it in its own namespace
    pid = next(p for p in range(os.getpid() + 50_000, 4_000_000, 7919) if not pid_alive(p))
    script = tmp_path / "holder.py"
    script.write_text(HOLDER, encoding="utf-8")
    # sh is the namespace's pid 1; it forks the holder (no exec), which gets ``pid``
    shell = f"echo {pid - 1} > /proc/sys/kernel/ns_last_pid && {sys.executable} {script} {path}"
    shell += "; true"
    holder = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", shell],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().split() == ["held", str(pid)]
        ledger = Ledger.open(path)
        try:
            # $9 of $10 held by a live run: $5 more does not fit
            got = ledger.hold(5 * NANO, {ALL: 10 * NANO}, project="b", ttl_s=60)
            assert isinstance(got, Refusal), "the live hold was dropped as a dead process's"
            assert got.held_nano == 9 * NANO
        finally:
            ledger.close()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=STEP_TIMEOUT_S)


def test_a_reader_opening_a_ledger_that_is_not_there_is_told_and_creates_nothing(
    tmp_path: Path,
) -> None:
    """`batchgen spend --ledger typo.sqlite` made an empty ledger there and said "$0 spent"
    (batchgen/cli/commands/spend.py is to pass create=False for `spend`)."""
    from batchgen.money.ledger import LedgerError

    missing = tmp_path / "typo-ledger.sqlite"
    with pytest.raises(LedgerError, match=str(missing)) as err:
        Ledger.open(missing, create=False)
    assert "--ledger PATH" in str(err.value)
    assert list(tmp_path.iterdir()) == []
    # a ledger that is there opens for reading as before, with what the runs recorded
    writer = Ledger.open(missing)
    writer.close()
    Ledger.open(missing, create=False).close()


def test_a_copied_run_directory_resumed_beside_its_original_keeps_both_spends(
    tmp_path: Path, sim, monkeypatch, capsys
) -> None:
    """`cp -r runs/x runs/x-retry` then resuming both: one run id, two logs. Each resume made
    the ledger's rows of that run id its own log's, so the other copy's spend vanished from
    the month's total (a monthly budget then let that much more through)."""
    import json
    import shutil
    import sqlite3

    from batchgen.cli.main import main
    from tests.runhelpers import SECRET_KEY, sim_flags

    std = {"model": "dall-e-3", "quality": "standard", "size": "1024x1024"}  # $0.04
    jobs = tmp_path / "p" / "jobs.jsonl"
    jobs.parent.mkdir()
    jobs.write_text("".join(json.dumps({**std, "prompt": f"job {i}"}) + "\n" for i in range(10)))
    ledger = tmp_path / "ledger.sqlite"
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("BATCHGEN_LEDGER", str(ledger))
    run, copy = tmp_path / "run", tmp_path / "run-copy"
    common = ["--concurrency", "1", "--yes", "--quiet", *sim_flags(sim)]
    assert main(["run", str(jobs), "--run-dir", str(run), "--max-cost", "0.2", *common]) == 3
    shutil.copytree(run, copy)
    # the copy goes on: 5 more jobs, $0.20 more
    assert main(["resume", str(copy), "--max-cost", "1", *common]) == 0
    # the original is resumed too (under its own cap: nothing more is sent)
    assert main(["resume", str(run), "--max-cost", "0.2", *common]) in (0, 3)
    # the original's $0.20 and the copy's $0.20 more (their shared $0.20 counted once)
    assert sim.stats.received == 10
    with sqlite3.connect(ledger) as con:
        total = con.execute("SELECT SUM(cost_usd) FROM attempts").fetchone()[0]
        month = con.execute("SELECT SUM(cost_nano) FROM totals").fetchone()[0]
    assert total == pytest.approx(0.40)
    assert month == round(0.40 * NANO)
    # moved, not copied: the rows follow the directory (not counted twice)
    moved = tmp_path / "run-moved"
    run.rename(moved)
    assert main(["resume", str(moved), "--max-cost", "0.2", *common]) in (0, 3)
    with sqlite3.connect(ledger) as con:
        assert con.execute("SELECT SUM(cost_usd) FROM attempts").fetchone()[0] == pytest.approx(
            0.40
        )
    capsys.readouterr()
