"""Month boundaries of the spend ledger: a hold counts against the month it was taken in and
every later month until it is released; the spend it settles into counts in the month it was
billed (the row's end). So a batch submitted on the 31st and collected on the 1st keeps its
worst case out of the new month's budget until its real cost is there instead: the money is
never free in between. Explicit timestamps (the ledger's and the budget's injected clock), no
waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from batchgen.money.ledger import ALL, NANO, Ledger, Refusal, RunTag, month_of
from batchgen.money.monthly import MonthlyBudget

JAN_31 = datetime(2026, 1, 31, 23, 50, tzinfo=UTC).timestamp()
FEB_1 = datetime(2026, 2, 1, 0, 20, tzinfo=UTC).timestamp()
MAR_1 = datetime(2026, 3, 1, 0, 20, tzinfo=UTC).timestamp()
CAP = 1 * NANO  # $1 a month
OWNER = "batch run-1 part 1"


@pytest.fixture
def ledger(tmp_path: Path):
    led = Ledger.open(tmp_path / "ledger.sqlite")
    yield led
    led.close()


def _budget(ledger: Ledger, now: list[float]) -> MonthlyBudget:
    return MonthlyBudget(ledger, "p", {ALL: CAP}, run_id="run-1", clock=lambda: now[0])


def test_a_batch_held_on_the_31st_still_holds_the_next_month_until_collected(
    ledger: Ledger,
) -> None:
    now = [JAN_31]
    submitter = _budget(ledger, now)
    hold = submitter.hold(round(0.7 * NANO))  # the batch's worst case, $0.70
    assert isinstance(hold, int)
    submitter.own([hold], OWNER)
    submitter.park(OWNER)  # --detach: the process is gone, the batch runs on
    assert month_of(JAN_31) == "2026-01" and month_of(FEB_1) == "2026-02"

    # February 1st, before the batch is collected: another run wants $0.50 of February's $1
    now[0] = FEB_1
    other = _budget(ledger, now)
    assert ledger.held_nano(ALL, FEB_1) == round(0.7 * NANO)
    assert other.remaining_nano() == round(0.3 * NANO)
    assert other.hold(round(0.5 * NANO)) is None
    refusal = other.last_refusal
    assert isinstance(refusal, Refusal) and refusal.held_nano == round(0.7 * NANO)
    assert other.hold(round(0.3 * NANO)) is not None  # what is left still fits

    # collected on February 1st: its real cost ($0.60) is February's, the hold is gone
    collector = _budget(ledger, now)
    collector.adopt(OWNER, round(0.7 * NANO))
    row = {"job_id": "j1", "cost_usd": 0.6, "finished_at": FEB_1, "provider_batch_id": "b1"}
    assert ledger.record([row], RunTag("run-1", "p")) == 1
    collector.release_owner(OWNER)
    assert ledger.held_nano(ALL, FEB_1) == round(0.3 * NANO)  # the other run's hold only
    assert ledger.spent_nano("2026-02") == round(0.6 * NANO)
    assert ledger.spent_nano("2026-01") == 0
    assert other.remaining_nano() == round(0.1 * NANO)


def test_a_hold_counts_in_no_month_before_it_was_taken_and_in_none_once_released(
    ledger: Ledger,
) -> None:
    hold = ledger.hold(round(0.4 * NANO), {ALL: CAP}, project="p", ttl_s=90 * 86400, now=FEB_1)
    assert isinstance(hold, int)
    assert ledger.held_nano(ALL, JAN_31) == 0  # taken in February: January never saw it
    assert ledger.held_nano(ALL, FEB_1) == round(0.4 * NANO)
    assert ledger.held_nano(ALL, MAR_1) == round(0.4 * NANO)  # still out in March
    assert ledger.held_nano("p", MAR_1) == round(0.4 * NANO)
    assert ledger.held_nano("other", MAR_1) == 0
    ledger.release(hold)
    assert ledger.held_nano(ALL, MAR_1) == 0
