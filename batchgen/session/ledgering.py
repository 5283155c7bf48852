"""A session's link to the spend ledger (batchgen.money.ledger) and the monthly budgets.

    link = LedgerLink.open(cfg, job_file, recorded_project=...)  (None: the ledger is off)
    link.check_month(need_usd)      refuse a run the month cannot pay for (exit 2)
    link.bind(run_id, run_dir)      before the first row
    link.attach(budget, observer)   the budget's reservations also hold money in the ledger
    link.sink(writer)               every priced row is logged, then recorded in the ledger
    link.sync_run(rundir)           the run's ledger rows := its log's (resume, rebuild)

Where a setting comes from: the flag, else ``~/.config/batchgen/config.toml``; the ledger's
path also from ``$BATCHGEN_LEDGER`` (between the two).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.config import RunConfig
from batchgen.errors import UsageError
from batchgen.money.ledger import (
    ENV,
    NANO,
    Ledger,
    LedgerError,
    RunTag,
    ledger_path,
    month_of,
)
from batchgen.money.monthly import (
    BudgetEvent,
    MonthlyBudget,
    UserConfig,
    caps_nano,
    describe_scope,
    load_user_config,
    run_hook,
)
from batchgen.provider.endpoints import load_providers

if TYPE_CHECKING:
    from batchgen.money import Budget
    from batchgen.runlog.rundir import RunDir
    from batchgen.session.observer import Observer

# a hold outlives a request's timeout by this much before others may take its money back
# (a crashed holder on this host is dropped at once: its pid is gone)
_TTL_MARGIN_S = 600.0
_LOG_COLUMNS = [
    "session",
    "job_id",
    "attempt",
    "provider",
    "endpoint",
    "model",
    "quality",
    "size",
    "image_count",
    "cost_usd",
    "cost_source",
    "started_at",
    "finished_at",
    "provider_batch_id",
]


def project_of(cfg_project: str | None, job_file: str | Path) -> str:
    """--project, else the job file's folder name."""
    if cfg_project:
        return cfg_project
    return Path(os.path.abspath(job_file)).parent.name or "default"


class LedgerSink:
    """The run log's sink, and the ledger's: a priced row goes to both. Under a monthly
    budget the ledger is written first thing after the log, before the attempt's hold is
    released (the pool's thread: the holds are written there too). Without one, the rows go
    to the ledger in one worker thread, in the order they were logged: another process
    holding the ledger's write lock (up to its 30 s busy timeout) then keeps no request
    waiting (tests/test_ledger_loop.py); ``drain`` waits for them."""

    def __init__(self, inner: Any, link: LedgerLink) -> None:
        self.inner = inner
        self.link = link
        self._worker = (
            None
            if link.monthly.enforced
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchgen-ledger")
        )

    def append(self, row: Mapping[str, Any]) -> None:
        self.inner.append(row)
        cost = row.get("cost_usd")
        if cost is not None and cost > 0 and self.link.monthly.error is None:
            if self._worker is None:
                self._record(row)
            else:
                self._worker.submit(self._record, dict(row))

    def _record(self, row: Mapping[str, Any]) -> None:
        if self.link.monthly.error is not None:
            return
        try:
            self.link.ledger.record([row], self.link.run)
        except LedgerError as exc:
            # the log has the row (a resume or `ledger rebuild` adds it); a budget kept
            # in a ledger that misses it would let money through: no more holds
            self.link.monthly.error = str(exc)

    def drain(self) -> None:
        """Every row appended is in the ledger (or the ledger's error is noted)."""
        if self._worker is not None:
            self._worker.shutdown(wait=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class LedgerLink:
    def __init__(self, ledger: Ledger, project: str, cfg: RunConfig, user: UserConfig) -> None:
        self.ledger = ledger
        self.project = project
        self.run = RunTag("", project)
        self._sinks: list[LedgerSink] = []
        monthly = cfg.monthly_budget if cfg.monthly_budget is not None else user.monthly_budget
        project_cap = (
            cfg.project_budget
            if cfg.project_budget is not None
            else user.project_budgets.get(project)
        )
        self.on_budget = cfg.on_budget or user.on_budget
        # the run's key variables stay out of --on-budget's environment (as --on-end's)
        self.hide_env = key_variables(cfg) if self.on_budget else ()
        self.monthly = MonthlyBudget(
            ledger,
            project,
            caps_nano(monthly, project_cap, project),
            ttl_s=cfg.pool.timeout + _TTL_MARGIN_S,
        )

    @classmethod
    def open(
        cls, cfg: RunConfig, job_file: str | Path, recorded_project: str | None = None
    ) -> LedgerLink | None:
        if cfg.provider == "sim" and cfg.ledger is None and os.environ.get(ENV) is None:
            # the simulator's spend is no money: it reaches a ledger only when one is named
            if cfg.monthly_budget is not None or cfg.project_budget is not None:
                raise UsageError(
                    "a monthly budget against the simulator needs a ledger of its own: "
                    f"--ledger PATH (or {ENV}=PATH), so the real one stays real"
                )
            return None
        user = load_user_config()
        given = cfg.ledger
        if given is None and os.environ.get(ENV) is None:
            given = user.ledger
        path = ledger_path(given)
        project = project_of(cfg.project or recorded_project, job_file)
        wants_budget = (
            cfg.monthly_budget is not None
            or cfg.project_budget is not None
            or (user.monthly_budget is not None)
            or project in user.project_budgets
        )
        if path is None:
            if wants_budget:
                raise UsageError(
                    "a monthly budget needs the spend ledger, which is off (--ledger off or "
                    f"{ENV}=off): give a ledger file, or drop the budget"
                )
            return None
        return cls(Ledger.open(path), project, cfg, user)

    def bind(self, run_id: str, run_dir: str | Path) -> None:
        self.run = RunTag(run_id, self.project, str(Path(run_dir).resolve()))
        self.monthly.run_id = run_id

    def attach(self, budget: Budget, observer: Observer) -> None:
        if not self.monthly.enforced:
            return
        budget.monthly = self.monthly
        hook = self.on_budget

        def on_event(event: BudgetEvent) -> None:
            observer.say(event.line(), "yellow" if event.percent < 100 else "red")
            if hook:
                run_hook(hook, event, self.hide_env)

        self.monthly.on_event = on_event

    def sink(self, inner: Any) -> LedgerSink:
        self._sinks.append(LedgerSink(inner, self))
        return self._sinks[-1]

    def drain(self) -> None:
        """The rows the sinks still write in their thread are in the ledger: before it is
        read or closed (after the session's event loop, which never waits for them)."""
        for s in self._sinks:
            s.drain()

    def check_month(
        self, need_usd: float, run_dir: str = "RUN_DIR", unpriced: tuple[str, ...] = ()
    ) -> None:
        """Refuse (UsageError: exit 2, nothing sent) a run whose expected cost does not fit
        in what the month has left under every budget, or cannot be bounded."""
        if not self.monthly.enforced:
            return
        if unpriced:
            msg = (
                f"the monthly budget cannot be enforced: no price for {', '.join(unpriced)}. "
                "Add the model(s) to a --prices FILE, or pass --price-per-image USD"
            )
            raise UsageError(msg)
        need = round(need_usd * NANO)
        for scope, cap in self.monthly.caps.items():
            now = self.monthly.clock()
            spent = self.ledger.spent_nano(month_of(now), scope)
            held = self.ledger.held_nano(scope, now)
            if spent + held + need > cap:
                held_text = f" (+ ${held / NANO:.4f} held by runs in flight)" if held else ""
                msg = (
                    f"not started: this month's spend is ${spent / NANO:.4f}{held_text} of "
                    f"{describe_scope(scope, self.project)} ${cap / NANO:.2f}, "
                    f"${max(cap - spent - held, 0) / NANO:.4f} left, and this run needs "
                    f"about ${need_usd:.4f}. Raise the budget, run part of it with --max-cost "
                    "USD, or see `batchgen spend`"
                )
                raise UsageError(msg)

    def sync_run(self, rundir: RunDir) -> int:
        """The run's rows in the ledger become its log's (after recovery, on resume)."""
        return self.sync_run_of(rundir.path)

    def sync_run_of(self, run_dir: Path) -> int:
        self.drain()
        return self.ledger.replace_run(log_rows(run_dir), self.run)

    def share_line(self) -> str | None:
        """ "this run: $X, N % of the month's spend" (None when nothing was spent)."""
        self.drain()
        try:
            run = self.ledger.run_total(self.run.run_id)
            month = self.ledger.spent_nano(month_of(self.monthly.clock())) / NANO
        except (LedgerError, sqlite3.Error):
            return None
        if run <= 0 or month <= 0:
            return None
        text = (
            f"this run: ${run:.4f} in the spend ledger, {min(run / month, 1.0) * 100:.0f} % of "
            f"the ${month:.2f} spent this month"
        )
        for scope, spent, cap in self.monthly.state():
            if cap > 0:
                text += (
                    f"; {describe_scope(scope, self.project)} ${cap:.2f}: "
                    f"{max(cap - spent, 0.0) / cap * 100:.0f} % left"
                )
        return text

    def close(self) -> None:
        self.drain()
        self.ledger.close()


def key_variables(cfg: RunConfig) -> tuple[str, ...]:
    """The names of the variables holding the run's keys: --api-key-env (default
    OPENAI_API_KEY) and a --providers file's key_env of each endpoint."""
    names = {cfg.api_key_env or "OPENAI_API_KEY"}
    if cfg.providers:
        names.update(spec.key_env for spec in load_providers(cfg.providers))
    return tuple(sorted(names))


def log_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The priced rows of a run's log, with the columns the ledger keeps, and the judge's
    bills of its scores (kind ``judge``)."""
    # lazy: the log's rows (pandas, pyarrow.compute) only for sync_run (resume, `batchgen
    # spend`'s rebuild); a new run's session imports this module and never imports pandas
    # (tests/test_startup.py)
    import pyarrow.compute as pc

    from batchgen.runlog.reader import read_log

    table = read_log(run_dir, _LOG_COLUMNS)
    rows: list[dict[str, Any]] = []
    if table.num_rows:
        table = table.filter(pc.fill_null(pc.greater(table["cost_usd"], 0), False))
        rows = table.to_pylist()
    return rows + judge_rows(run_dir)


def judge_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Each billed score row as a ledger row: the judge's model from the scorer's id
    (``judge:<model>:<rubric>``)."""
    # lazy: as log_rows's: the scores are read with pyarrow.dataset and pandas
    from batchgen.quality.store import read_scores

    out = []
    for r in read_scores(run_dir, latest=False).to_pylist():
        if not r["cost_usd"] or r["cost_usd"] <= 0:
            continue
        scorer = str(r["scorer"] or "")
        parts = scorer.split(":")
        out.append(
            {
                "session": r["session"],
                "job_id": r["job_id"],
                "attempt": r["attempts"],
                "kind": "judge",
                "model": parts[1] if len(parts) > 1 else scorer,
                "image_count": 0,
                "cost_usd": r["cost_usd"],
                "cost_source": r["cost_source"],
                "finished_at": r["scored_at"],
            }
        )
    return out


def rebuild(ledger: Ledger, run_dirs: list[Path]) -> list[tuple[Path, str, int, float]]:
    """Each run's ledger rows := its log's; (dir, run id, rows, cost) per run. A directory
    that is not a run directory is a UsageError naming it (nothing of the others is lost:
    each run is its own transaction)."""

    out = []
    for run_dir in run_dirs:
        manifest_path = Path(run_dir) / "run.json"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            run_id = str(manifest["run_id"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            msg = (
                f"{manifest_path}: not a readable run directory ({exc}); give directories "
                "that `batchgen run` made (they hold run.json and log/)"
            )
            raise UsageError(msg) from exc
        settings = manifest.get("settings") or {}
        project = project_of(settings.get("project"), str(manifest.get("job_file") or run_dir))
        run = RunTag(run_id, project, str(Path(run_dir).resolve()))
        rows = log_rows(Path(run_dir))
        count = ledger.replace_run(rows, run)
        out.append((Path(run_dir), run_id, count, sum(float(r["cost_usd"]) for r in rows)))
    return out


def link_for_run(
    cfg: RunConfig,
    manifest: Mapping[str, Any],
    run_dir: Path,
    budget: Budget | None,
    observer: Observer,
) -> LedgerLink | None:
    """The ledger for another session of a recorded run (a regeneration round): bound to the
    run, its budget holding money in the ledger. None: the ledger is off."""
    settings = manifest.get("settings") or {}
    link = LedgerLink.open(cfg, str(manifest["job_file"]), settings.get("project"))
    if link is None:
        return None
    link.bind(str(manifest["run_id"]), run_dir)
    if budget is not None:
        link.attach(budget, observer)
    return link


def judge_to_ledger(cfg: RunConfig, manifest: Mapping[str, Any], run_dir: Path) -> None:
    """After scoring: the judge's bills join the run's rows in the spend ledger (the run's
    rows made again from its log and scores)."""
    settings = manifest.get("settings") or {}
    link = LedgerLink.open(cfg, str(manifest["job_file"]), settings.get("project"))
    if link is None:
        return
    try:
        link.bind(str(manifest["run_id"]), run_dir)
        link.sync_run_of(run_dir)
    finally:
        link.close()
