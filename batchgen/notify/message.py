"""The message a session's end sends: how it ended (finished / finished with failures / stopped
and why), the run's counts and what it cost — from the run directory, like ``batchgen report``,
so a resumed run's message covers the whole run. Never the key: the text is built from counts
and the session's stop message (already redacted), then passed through ``redact`` again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batchgen.errors import redact
from batchgen.session.outcome import EXIT_FAILED, EXIT_OK


@dataclass(frozen=True, slots=True)
class EndMessage:
    outcome: str  # finished | finished_with_failures | stopped
    title: str
    body: str
    run_dir: str
    exit_code: int
    succeeded: int
    failed: int
    pending: int
    cost_usd: float
    stop_reason: str
    how: str

    @property
    def kind(self) -> str:
        """apprise's notification type."""
        kinds = {
            "finished": "success",
            "finished_with_failures": "warning",
            "budget_alert": "warning",
        }
        return kinds.get(self.outcome, "failure")

    def environ(self) -> dict[str, str]:
        """What ``--on-end CMD`` gets, as BATCHGEN_* variables."""
        return {
            "BATCHGEN_OUTCOME": self.outcome,
            "BATCHGEN_ENDING": self.how,
            "BATCHGEN_EXIT_CODE": str(self.exit_code),
            "BATCHGEN_RUN_DIR": self.run_dir,
            "BATCHGEN_SUCCEEDED": str(self.succeeded),
            "BATCHGEN_FAILED": str(self.failed),
            "BATCHGEN_PENDING": str(self.pending),
            "BATCHGEN_COST_USD": f"{self.cost_usd:.4f}",
            "BATCHGEN_STOP_REASON": self.stop_reason,
            "BATCHGEN_MESSAGE": self.body,
        }


ALERT_SHARE = 0.8  # a budget alert when the spend passes this share of --max-cost


def budget_alert(spent: float, cap: float) -> EndMessage:
    """The one mid-run message: the spend passed ALERT_SHARE of --max-cost."""
    title = f"batchgen: ${spent:.2f} of the ${cap:.2f} budget spent"
    body = (
        f"{spent / cap:.0%} of --max-cost is spent; the run stops sending before it "
        "passes the cap (then: batchgen resume RUN_DIR --max-cost HIGHER)"
    )
    return EndMessage("budget_alert", title, body, "", 0, 0, 0, 0, spent, "budget", "running")


def end_message(rundir: Any, result: Any) -> EndMessage:
    """``rundir``: the session's RunDir; ``result``: its SessionResult."""
    succeeded, failed, pending, cost = _counts(rundir, result)
    reason = result.stop_reason.value if result.stop_reason is not None else ""
    name = rundir.path.name
    if result.exit_code == EXIT_OK:
        outcome, head = "finished", f"batchgen: {name} finished"
    elif result.exit_code == EXIT_FAILED:
        outcome, head = "finished_with_failures", f"batchgen: {name} finished, {failed} failed"
    else:
        outcome, head = "stopped", f"batchgen: {name} stopped ({reason or result.how})"
    lines = [f"{succeeded} succeeded, {failed} failed, {pending} pending; ${cost:.2f} spent"]
    if result.stop_message:
        lines.append(str(result.stop_message))
    if pending:
        lines.append(f"batchgen resume {rundir.path} finishes the rest")
    lines.append(f"run: {rundir.path}")
    body = redact("\n".join(lines))
    return EndMessage(
        outcome,
        redact(head),
        body,
        str(rundir.path),
        result.exit_code,
        succeeded,
        failed,
        pending,
        cost,
        reason,
        str(result.how),
    )


def _counts(rundir: Any, result: Any) -> tuple[int, int, int, float]:
    try:
        # lazy: the end message's counts read the log (pandas, pyarrow.dataset); every run's
        # body imports this module (cli/commands/notify), only --notify/--on-end sends one,
        # and a plain run never imports pandas (tests/test_startup.py)
        from batchgen.money.spent import spent
        from batchgen.runlog.state import DONE, FAILED, job_states

        counts = job_states(rundir.path, with_inflight=False).counts()
        jobs = rundir.manifest().jobs or 0
        done, failed = counts[DONE], counts[FAILED]
        return done, failed, max(jobs - done - failed, 0), spent(rundir.path).images_usd
    except Exception:  # a damaged run directory still gets its message, from the session
        tally = result.tally
        return tally.ok_jobs, tally.failed_jobs, tally.skipped_jobs, float(tally.cost_usd)
