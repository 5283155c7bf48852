"""Budgets over time: ``--monthly-budget`` (every project of the ledger) and
``--project-budget`` (this run's project), enforced by reservation in the shared ledger.

    MonthlyBudget(ledger, project, caps).hold(amount_nano) -> hold id | None
    .release(hold_id)       after the attempt's row is in the ledger
    .own(ids, owner) / .park(owner) / .adopt(owner, nano) / .release_owner(owner)
                            a Batch API part's holds: kept until its collection (any process)
    .check_alerts()         50 / 80 / 100 % crossings, each reported once per month and scope
    load_user_config() -> UserConfig     (~/.config/batchgen/config.toml, XDG_CONFIG_HOME)

A hold is taken before a request is sent, like ``--max-cost``'s reservation, but in the
ledger, in one ``BEGIN IMMEDIATE`` transaction: month's spend + every process's holds + this
hold ≤ the cap, or nothing is sent. The attempt's priced row is added to the ledger before its
hold is released, so the money is never counted as free in between; a hold still out when a
month ends counts in the next one too (a batch submitted on the 31st, collected on the 1st:
its cost is recorded when it ends). A process killed while holding loses its holds at the next
reservation of any process on the host (its pid is gone), or when they expire.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.errors import UsageError
from batchgen.money.ledger import ALL, NANO, Ledger, LedgerError, Refusal, month_of
from batchgen.numbers import plural

THRESHOLDS = (50, 80, 100)
CONFIG_ENV = "XDG_CONFIG_HOME"


@dataclass(frozen=True, slots=True)
class UserConfig:
    """What ``config.toml`` sets (None: not set there)."""

    path: Path | None = None
    ledger: str | None = None
    monthly_budget: float | None = None
    on_budget: str | None = None
    project_budgets: Mapping[str, float] = field(default_factory=dict)


def config_path() -> Path:
    base = os.environ.get(CONFIG_ENV) or str(Path.home() / ".config")
    return Path(base) / "batchgen" / "config.toml"


def load_user_config(path: Path | None = None) -> UserConfig:
    """The user's config file; missing is empty; a bad one is a UsageError naming the file,
    the line (TOML syntax) or the key, and the fix."""

    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return UserConfig()
    except OSError as exc:
        msg = f"{path}: cannot be read ({exc}); fix its permissions or remove it"
        raise UsageError(msg) from exc
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        msg = f"{path}: not valid TOML ({exc}); fix the line or remove the file"
        raise UsageError(msg) from exc
    known = {"ledger", "monthly_budget", "on_budget", "projects"}
    unknown = sorted(set(doc) - known)
    if unknown:
        msg = (
            f"{path}: unknown key(s) {', '.join(unknown)}; the keys are {', '.join(sorted(known))}"
        )
        raise UsageError(msg)
    projects: dict[str, float] = {}
    table = doc.get("projects", {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [projects] must be a table of [projects.NAME] tables")
    for name, entry in table.items():
        if not isinstance(entry, dict) or set(entry) - {"monthly_budget"}:
            msg = f"{path}: [projects.{name}] may only set monthly_budget = USD"
            raise UsageError(msg)
        if "monthly_budget" in entry:
            projects[name] = _usd(path, f"projects.{name}.monthly_budget", entry["monthly_budget"])
    for key in ("ledger", "on_budget"):
        if key in doc and not isinstance(doc[key], str):
            raise UsageError(f"{path}: {key} must be a string, got {doc[key]!r}")
    budget = doc.get("monthly_budget")
    return UserConfig(
        path=path,
        ledger=doc.get("ledger"),
        monthly_budget=None if budget is None else _usd(path, "monthly_budget", budget),
        on_budget=doc.get("on_budget"),
        project_budgets=projects,
    )


def _usd(path: Path, key: str, value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (math.isfinite(value) and value >= 0):
        raise UsageError(f"{path}: {key} must be a number of USD >= 0, got {value!r}")
    return float(value)


def caps_nano(monthly: float | None, project_cap: float | None, project: str) -> dict[str, int]:
    caps: dict[str, int] = {}
    if monthly is not None:
        caps[ALL] = math.floor(monthly * NANO + 1e-6)
    if project_cap is not None:
        caps[project] = math.floor(project_cap * NANO + 1e-6)
    return caps


@dataclass(frozen=True, slots=True)
class BudgetEvent:
    """A budget threshold crossed: what the terminal line and ``--on-budget`` are told."""

    scope: str  # "*" (every project) or the project
    percent: int
    month: str
    spent_usd: float
    budget_usd: float
    project: str
    run_id: str

    def line(self) -> str:
        what = "the monthly budget" if self.scope == ALL else f"project {self.scope}'s budget"
        return (
            f"budget alert: {self.percent} % of {what} used this month ({self.month}): "
            f"${self.spent_usd:.2f} of ${self.budget_usd:.2f}"
        )

    def environ(self) -> dict[str, str]:
        return {
            "BATCHGEN_BUDGET_EVENT": f"budget_{self.percent}",
            "BATCHGEN_BUDGET_PERCENT": str(self.percent),
            "BATCHGEN_BUDGET_SCOPE": "all" if self.scope == ALL else "project",
            "BATCHGEN_BUDGET_PROJECT": self.project,
            "BATCHGEN_BUDGET_MONTH": self.month,
            "BATCHGEN_BUDGET_SPENT_USD": f"{self.spent_usd:.6f}",
            "BATCHGEN_BUDGET_USD": f"{self.budget_usd:.2f}",
            "BATCHGEN_RUN_ID": self.run_id,
        }


def run_hook(
    command: str, event: BudgetEvent, hide: Collection[str] = ()
) -> subprocess.Popen[bytes] | None:
    """Start ``--on-budget CMD`` (a shell command) with the event in its environment; never
    waits for it. ``hide``: variables not passed on (the run's key variables, as for
    ``--on-end``). A command that cannot start is not an error of the run."""
    env = {k: v for k, v in os.environ.items() if k not in hide}
    try:
        return subprocess.Popen(
            command,
            shell=True,
            env={**env, **event.environ()},
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return None


class MonthlyBudget:
    """This process's side of the shared monthly budget(s)."""

    def __init__(
        self,
        ledger: Ledger,
        project: str,
        caps: Mapping[str, int],
        *,
        run_id: str = "",
        ttl_s: float = 900.0,
        on_event: Callable[[BudgetEvent], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.project = project
        self.caps = dict(caps)
        self.run_id = run_id
        self.ttl_s = ttl_s
        self.on_event = on_event
        self.clock = clock
        self.last_refusal: Refusal | None = None
        # the ledger could not be read or written: nothing more is sent under its budget
        self.error: str | None = None

    @property
    def enforced(self) -> bool:
        return bool(self.caps)

    def hold(self, amount_nano: int) -> int | None:
        if not self.caps or self.error is not None:
            return None
        try:
            got = self.ledger.hold(
                amount_nano, self.caps, project=self.project, ttl_s=self.ttl_s, now=self.clock()
            )
        except LedgerError as exc:
            self.error = str(exc)
            return None
        if isinstance(got, Refusal):
            self.last_refusal = got
            return None
        return got

    def release(self, hold_id: int) -> None:
        try:
            self.ledger.release(hold_id)
        except LedgerError as exc:  # the hold expires by itself; stop taking new ones
            self.error = str(exc)

    def own(self, hold_ids: list[int], owner: str) -> None:
        """The jobs' holds become one batch part's, released when it is collected."""
        self._guarded(lambda: self.ledger.own(hold_ids, owner))

    def park(self, owner: str) -> None:
        """The part's batch runs on after this process: its holds wait for its collection."""
        self._guarded(lambda: self.ledger.park(owner, self.clock()))

    def adopt(self, owner: str, amount_nano: int) -> None:
        """An open part's holds become this process's; none left (a killed process's, or
        taken before holds had owners): ``amount_nano`` is held again, whatever the budget
        (the batch is at the provider: its money is committed)."""

        def go() -> None:
            now = self.clock()
            if self.ledger.adopt(owner, self.ttl_s, now) == 0 and amount_nano > 0:
                self.ledger.hold(
                    amount_nano, {}, project=self.project, ttl_s=self.ttl_s, now=now, owner=owner
                )

        self._guarded(go)

    def release_owner(self, owner: str) -> None:
        self._guarded(lambda: self.ledger.release_owner(owner))

    def _guarded(self, step: Callable[[], None]) -> None:
        if not self.caps:
            return
        try:
            step()
        except LedgerError as exc:  # a hold expires by itself; stop taking new ones
            self.error = str(exc)

    def remaining_nano(self) -> int:
        """The least room left under the caps (held money counted as spent)."""
        if self.error is not None:
            return 0
        now = self.clock()
        month = month_of(now)
        room = []
        for scope, cap in self.caps.items():
            spent = self.ledger.spent_nano(month, scope) + self.ledger.held_nano(scope, now)
            room.append(max(cap - spent, 0))
        return min(room) if room else 0

    def state(self) -> list[tuple[str, float, float]]:
        """(scope, spent USD this month, cap USD) per cap."""
        month = month_of(self.clock())
        return [
            (scope, self.ledger.spent_nano(month, scope) / NANO, cap / NANO)
            for scope, cap in self.caps.items()
        ]

    def check_alerts(self) -> list[BudgetEvent]:
        """Thresholds crossed by the month's spend and not reported yet (by any process)."""
        if not self.caps or self.error is not None:
            return []
        now = self.clock()
        month = month_of(now)
        events = []
        for scope, cap in self.caps.items():
            spent = self.ledger.spent_nano(month, scope)
            for percent in THRESHOLDS:
                if cap <= 0 or spent * 100 < cap * percent:
                    continue
                # keyed by the budget too: a budget raised mid-month alerts again
                if self.ledger.claim_alert(month, f"{scope}@{cap}", percent, now):
                    event = BudgetEvent(
                        scope, percent, month, spent / NANO, cap / NANO, self.project, self.run_id
                    )
                    events.append(event)
                    if self.on_event is not None:
                        self.on_event(event)
        return events

    def refusal_message(
        self, run_dir: str = "RUN_DIR", refused: int = 0, remaining_usd: float | None = None
    ) -> str:
        """``refused``: the jobs not sent; ``remaining_usd``: the worst case of every job not
        done yet, so the message names a budget that lets the whole rest through."""
        if self.error is not None:
            return (
                f"the monthly budget cannot be kept: {self.error}; {plural(refused, 'job')} "
                f"{'was' if refused == 1 else 'were'} not sent. Fix the ledger, then batchgen "
                f"resume {run_dir}"
            )
        r = self.last_refusal
        if r is None:
            return "the monthly budget is used up"
        # the month's spend and holds when it refused (this run's in-flight money among them,
        # spend by now; the ledger is closed by the time a run ends) and the rest's worst case
        need = (
            None if remaining_usd is None else (r.spent_nano + r.held_nano) / NANO + remaining_usd
        )
        return monthly_message(r, self.project, run_dir, refused, need)


def describe_scope(scope: str, project: str) -> str:
    if scope == ALL:
        return "--monthly-budget"
    return f"--project-budget (project {project})"


def monthly_message(
    r: Refusal,
    project: str,
    run_dir: str = "RUN_DIR",
    refused: int = 0,
    need_usd: float | None = None,
) -> str:
    held = (
        f" (+ ${r.held_nano / NANO:.4f} held by requests and batches in flight)"
        if r.held_nano
        else ""
    )
    jobs = (
        f"{plural(refused, 'job')} {'was' if refused == 1 else 'were'} not sent; "
        if refused
        else ""
    )
    scope = describe_scope(r.scope, project)
    # the figure covers the month's spend and holds now and the worst case of the run's rest
    raise_to = (
        f"raise {scope.split(' ')[0]} to at least ${math.ceil(need_usd * 100 - 1e-6) / 100:.2f}"
        if need_usd is not None
        else "raise the budget"
    )
    return (
        f"Monthly budget reached: this month's spend is ${r.spent_nano / NANO:.4f} of "
        f"{scope} ${r.cap_nano / NANO:.2f}{held}, and the next "
        f"request needs up to ${r.amount_nano / NANO:.4f}. {jobs}To continue: {raise_to} "
        f"(flag or config.toml) and batchgen resume {run_dir}; `batchgen spend` shows "
        "where the month's money went"
    )
