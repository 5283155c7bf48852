"""run.json's record of a session's end: its counts and spend, and, when a budget stopped it,
the text the run's ending says (every job not sent counted, a cap or monthly budget that
covers the rest suggested) with the flag of that budget: what `batchgen report`, --notify
and --on-end read after the run, and what the CLI prints as the run's last line."""

from __future__ import annotations

from typing import Any

from batchgen.money import Budget
from batchgen.money.ledger import ALL
from batchgen.runlog.rundir import RunDir
from batchgen.runner.pool import PoolTally


def total_spent(budget: Budget | None, tally: PoolTally) -> float:
    """Spend of the whole run directory: a capped budget tracks it attempt by attempt;
    otherwise it is what earlier sessions spent plus this session's rows."""
    if budget is None:
        return tally.cost_usd
    if budget.cap_usd is not None:
        return budget.spent
    return budget.spent + tally.cost_usd


def budget_stop(rundir: RunDir, budget: Budget | None) -> tuple[str, str] | None:
    """A session a budget stopped: what the run's ending says (every job not sent counted, a
    cap or monthly budget that covers the rest suggested) and
    the flag of the budget that stopped it. Recorded in run.json and sent by --notify/--on-end,
    so what is read after the run says what the terminal said."""
    if budget is None:
        return None
    # lazy: the rest is priced as resume selects it, reading the log (pyarrow, which imports
    # pandas); only a session a budget stopped pays for it (a run never imports pandas:
    # tests/test_startup.py)
    from batchgen.session.rest import quote_rest

    rest = quote_rest(rundir, budget)
    path = str(rundir.path)
    if rest is None:
        text = budget.exhausted_message(path)
    else:
        text = budget.stop_message(path, rest.worst_usd, rest.not_sent)
    return text, stopped_by(budget)


def stopped_by(budget: Budget) -> str:
    """The flag of the budget whose refusal stopped the run."""
    monthly = budget.monthly
    if not budget.refused_by_month or monthly is None:
        return "--max-cost"
    refusal = monthly.last_refusal
    if refusal is None or refusal.scope == ALL:
        return "--monthly-budget"
    return "--project-budget"


def session_summary(
    tally: PoolTally, budget: Budget | None, stop: tuple[str, str] | None = None
) -> dict[str, Any]:
    """run.json's record of a session; ``stop``: :func:`budget_stop`'s, when a budget stopped
    it (``stop_message``, ``stopped_by``: what `batchgen report` and a webhook read)."""
    extra = {} if stop is None else {"stop_message": stop[0], "stopped_by": stop[1]}
    return {
        "jobs_taken": tally.taken,
        "jobs_ok": tally.ok_jobs,
        "jobs_failed": tally.failed_jobs,
        "jobs_skipped": tally.skipped_jobs,
        "images": tally.images,
        "attempts": tally.attempts,
        "cost_usd": round(tally.cost_usd, 6),
        "spent_total_usd": round(total_spent(budget, tally), 6),
        **extra,
    }
