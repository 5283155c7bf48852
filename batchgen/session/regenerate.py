"""The rounds of the quality loop (``resume --regenerate-below S``): score what has no
verdict, then each round one live session over the jobs whose best image scores below S,
their images under a round tag, scored in turn. The helpers (best per job, the next round's
number) are batchgen.quality.regenerate's."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from batchgen.config import RunConfig
from batchgen.money import Budget, PriceTable
from batchgen.money.spent import spent
from batchgen.numbers import plural
from batchgen.quality.regenerate import mark_best, next_round, weak_jobs
from batchgen.quality.session import (
    ScoreResult,
    ScorerSpec,
    local_scorer_or_usage_error,
    require_judge_price,
    score_run,
    scorer_spec,
)
from batchgen.quality.store import load_scorer
from batchgen.runlog.rundir import RunDir
from batchgen.session.builder import prepare_session
from batchgen.session.connect import Connection, connect, resolve_connection, sim_config
from batchgen.session.execute import execute
from batchgen.session.ledgering import judge_to_ledger, link_for_run
from batchgen.session.observer import Observer
from batchgen.session.outcome import EXIT_FAILED, EXIT_OK, EXIT_STOPPED, SessionResult
from batchgen.session.prepare import load_prices


@dataclass(frozen=True, slots=True)
class Regenerate:
    threshold: float  # a job whose best image scores below this is regenerated
    max_rounds: int = 2


@dataclass(frozen=True, slots=True)
class RoundsOutcome:
    exit_code: int
    result: SessionResult | None = None  # the last round's session
    budget: Budget | None = None


class _Rounds:
    """One regeneration: the scorer, the connection, and the money bound over the rounds."""

    def __init__(
        self,
        rundir: RunDir,
        cfg: RunConfig,
        manifest: dict[str, Any],
        regen: Regenerate,
        job_file: Path,
        observer: Observer,
        argv: Sequence[str],
        handle_signals: bool,
    ) -> None:
        self.rundir, self.cfg, self.manifest, self.regen = rundir, cfg, manifest, regen
        self.job_file, self.observer, self.argv = job_file, observer, argv
        self.handle_signals = handle_signals
        self.connection, _ = connect(cfg)
        settings = manifest.get("settings") or {}
        spec = scorer_spec(cfg.given, load_scorer(rundir.path), settings)
        spec = dataclasses.replace(spec, threshold=regen.threshold)
        if spec.kind == "judge" and spec.provider != "sim" and not spec.base_url:
            spec = dataclasses.replace(spec, base_url=self.connection.base_url)
        self.spec: ScorerSpec = spec
        self.local = local_scorer_or_usage_error(spec)
        self.prices: PriceTable = load_prices(cfg.prices, cfg.price_per_image)
        require_judge_price(spec, self.prices, cfg.max_cost)

    def cap_left(self) -> float | None:
        if self.cfg.max_cost is None:
            return None
        return max(0.0, self.cfg.max_cost - spent(self.rundir.path).total)

    def score(self) -> ScoreResult:
        spec, cfg = self.spec, self.cfg
        judge = self._judge_connection()
        result = anyio.run(
            lambda: score_run(
                self.rundir.path,
                spec,
                run_id=self.manifest["run_id"],
                pool=cfg.pool,
                prices=self.prices,
                cap_usd=self.cap_left(),
                connection=judge,
                sim_config=sim_config(cfg) if spec.provider == "sim" else None,
                local_scorer=self.local,
                say=self._say(),
                quiet=cfg.quiet,
            )
        )
        mark_best(self.rundir.path, spec.id)
        judge_to_ledger(cfg, self.manifest, self.rundir.path)
        if result.to_score:
            self.observer.scored(self.rundir.path, spec, result)
        return result

    def _judge_connection(self) -> Connection | None:
        spec = self.spec
        if spec.kind != "judge":
            return None
        return resolve_connection(spec.provider, spec.base_url, spec.api_key_env, None)

    def _say(self) -> Any:
        return self.observer.say if self.handle_signals else None

    def scoring_stopped(self, result: ScoreResult) -> bool:
        if result.stop_reason is None:
            return False
        self.observer.say(
            f"scoring stopped ({result.stop_reason.value}): {result.stop_message}", "yellow"
        )
        return True


def run_rounds(
    rundir: RunDir,
    cfg: RunConfig,
    manifest: dict[str, Any],
    regen: Regenerate,
    job_file: Path,
    observer: Observer,
    argv: Sequence[str],
    handle_signals: bool = True,
) -> RoundsOutcome:
    """The rounds; runs under the run directory's lock."""
    r = _Rounds(rundir, cfg, manifest, regen, job_file, observer, argv, handle_signals)
    if r.scoring_stopped(r.score()):
        return RoundsOutcome(EXIT_STOPPED)
    rounds = 0
    for _ in range(regen.max_rounds):
        weak = weak_jobs(rundir.path, r.spec.id, regen.threshold)
        if not weak:
            break
        if cfg.max_cost is not None and (r.cap_left() or 0.0) <= 0.0:
            observer.say("--max-cost leaves nothing for another round", "yellow")
            return RoundsOutcome(EXIT_STOPPED)
        rounds += 1
        stopped = _one_round(r, set(weak), rounds)
        if stopped is not None:
            return stopped
    still = weak_jobs(rundir.path, r.spec.id, regen.threshold)
    observer.say(
        f"regeneration: {plural(rounds, 'round')}; jobs whose best image scores below "
        f"{regen.threshold:g}: {len(still)}; best images marked in "
        f"{rundir.path / 'best.json'}"
    )
    return RoundsOutcome(EXIT_FAILED if still and rounds >= regen.max_rounds else EXIT_OK)


def _one_round(r: _Rounds, weak: set[str], rounds: int) -> RoundsOutcome | None:
    """One session over the weak jobs, then its images scored; an outcome when it stopped."""
    cfg, rundir = r.cfg, r.rundir
    round_no = next_round(rundir.path)
    r.observer.say(
        f"round {rounds}/{r.regen.max_rounds}: regenerating {plural(len(weak), 'job')} whose best "
        f"image scores below {r.regen.threshold:g} (images tagged ~r{round_no})"
    )
    prepared = prepare_session(
        cfg,
        r.job_file,
        only=frozenset(weak),
        via_batch=False,
        spent_before=spent(rundir.path).total,
    )
    session = rundir.begin_session(
        {"regenerate_below": r.regen.threshold, "round": round_no}, list(r.argv)
    )
    budget = prepared.budget
    plan = prepared.plan(
        rundir,
        r.manifest,
        session,
        r.observer,
        jobs=prepared.jobs(weak),
        jobs_to_run=len(weak),
        handle_signals=r.handle_signals,
        ledger=link_for_run(cfg, r.manifest, rundir.path, budget, r.observer),
        image_tag=f"~r{round_no}",
        extra_headers={"X-Batchgen-Round": str(round_no)},
    )
    try:
        result = anyio.run(execute, plan)
    finally:
        if plan.ledger is not None:
            plan.ledger.close()
    if result.stop_reason is not None:
        r.observer.session_ended(rundir, result, budget, summary=False)
        r.score()  # what was made before the stop is still scored
        return RoundsOutcome(EXIT_STOPPED, result, budget)
    if r.scoring_stopped(r.score()):
        return RoundsOutcome(EXIT_STOPPED, result, budget)
    return None
