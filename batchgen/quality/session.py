"""One scoring session: which scorer, where it talks to, the pool, and what it cost.

Shared by ``batchgen score`` and by ``batchgen resume --regenerate-below`` (which scores each
round's new images with the scorer of the last ``score``). The API key is read from the
environment when the session starts and is never written: ``scores/scorer.json`` records the
provider, base URL and the *name* of the key's variable, as run.json does.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio

from batchgen.errors import ErrorClass
from batchgen.limits.stop import RunControl
from batchgen.quality.judge import DEFAULT_RUBRIC, OpenAIJudge, rubric_id
from batchgen.quality.score import (
    JudgePool,
    ScoreTally,
    score_locally,
    settle_journals,
    to_score,
)
from batchgen.quality.store import ScoreStore, next_session, remove_temp_files, save_scorer

DEFAULT_THRESHOLD = 6.0


@dataclass(frozen=True, slots=True)
class ScorerSpec:
    kind: str  # "judge" | "clip"
    model: str  # the judge's chat model, or the CLIP model's name / path
    rubric: str = DEFAULT_RUBRIC
    detail: str = "low"
    provider: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    threshold: float = DEFAULT_THRESHOLD

    @property
    def id(self) -> str:
        if self.kind == "clip":
            name = Path(self.model).name if Path(self.model).exists() else self.model
            return f"clip:{name}"
        return f"judge:{self.model}:{rubric_id(self.rubric)}"

    def public(self) -> dict[str, Any]:
        return {"id": self.id, **asdict(self)}

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> ScorerSpec:
        fields = {k: saved[k] for k in cls.__dataclass_fields__ if k in saved}
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class ScoreResult:
    tally: ScoreTally
    already: int  # images that had a verdict of this scorer before the session
    to_score: int
    possibly_twice: int  # sent by a killed session, verdict never saved (this run, in all)
    stop_reason: ErrorClass | None
    stop_message: str
    mean: float | None


def load_local_scorer(spec: ScorerSpec) -> Any:
    from batchgen.quality.clip import ClipScorer

    return ClipScorer(spec.model)


async def score_run(
    run_dir: Path, spec: ScorerSpec, *, run_id: str, values: dict[str, Any], prices: Any,
    cap_usd: float | None, sim_config: Any = None, local_scorer: Any = None,
    rescore: bool = False, console: Any = None, extra_control: RunControl | None = None,
    quiet: bool = False,
) -> ScoreResult:  # fmt: skip
    """Score every saved image without a verdict of ``spec``; rows land in scores/."""
    from batchgen.cli.common import pool_settings, resolve_connection
    from batchgen.limits import RateLimiter

    remove_temp_files(run_dir)
    state_dir = run_dir / "state"
    # journals of killed sessions: their unsaved images are judged again now, and recorded
    twice = await anyio.to_thread.run_sync(settle_journals, run_dir, state_dir)
    items, already = await anyio.to_thread.run_sync(to_score, run_dir, spec.id, rescore)
    save_scorer(run_dir, spec.public())
    control = extra_control or RunControl()
    store = ScoreStore(run_dir, next_session(run_dir))
    tally = ScoreTally()
    progress = _Progress(console if not quiet else None, len(items))
    try:
        if not items:
            pass
        elif spec.kind == "clip":
            scorer = local_scorer or load_local_scorer(spec)
            tally = await score_locally(
                scorer, items, store, run_id=run_id, control=control, on_progress=progress
            )
        else:
            connection = resolve_connection(spec.provider, spec.base_url, spec.api_key_env)
            settings = pool_settings(values)
            limiter = RateLimiter(
                values.get("rpm"), None, concurrency=values.get("concurrency"),
                adapt=values.get("adaptive", True),
                max_pause_s=float(values.get("max_pause") or 300.0),
            )  # fmt: skip
            async with (
                _base_url(connection, sim_config) as base_url,
                anyio.create_task_group() as tg,
            ):
                judge = OpenAIJudge(
                    base_url, connection.api_key, spec.model, rubric=spec.rubric,
                    detail=spec.detail, connections=settings.concurrency + 4,
                )  # fmt: skip
                if console is not None:
                    tg.start_soon(_watch_signals, control, settings.grace_s, console)
                try:
                    pool = JudgePool(
                        judge, limiter, store, run_id=run_id, settings=settings,
                        control=control, prices=prices, cap_usd=cap_usd,
                        journal_dir=state_dir, on_progress=progress,
                    )  # fmt: skip
                    progress.status = limiter.describe
                    tally = await pool.run(items, spec.id)
                finally:
                    await judge.aclose()
                    tg.cancel_scope.cancel()
    finally:
        await anyio.to_thread.run_sync(lambda: store.close(compact=True))
    mean = statistics.fmean(tally.scores) if tally.scores else None
    return ScoreResult(
        tally, already, len(items), twice,
        control.reason, control.message, mean,
    )  # fmt: skip


class _Progress:
    """A plain line every few seconds: images scored of those to score, spend, limits."""

    EVERY_S = 3.0

    def __init__(self, console: Any, total: int) -> None:
        self.console = console
        self.total = total
        self.status: Any = None
        self.started = time.monotonic()
        self.last = self.started

    def __call__(self, tally: ScoreTally) -> None:
        now = time.monotonic()
        done = tally.scored + tally.failed
        if self.console is None or (now - self.last < self.EVERY_S and done < self.total):
            return
        self.last = now
        line = (
            f"[{now - self.started:7.1f}s] scored {done}/{self.total} · failed {tally.failed} "
            f"· ${tally.cost_usd:.4f}"
        )
        if self.status is not None:
            line += f" · limits: {self.status()}"
        self.console.print(line, markup=False, highlight=False)


async def _watch_signals(control: RunControl, grace_s: float, console: Any) -> None:
    from batchgen.cli.session import _watch_signals as watch

    await watch(control, grace_s, console)


@contextlib.asynccontextmanager
async def _base_url(connection: Any, sim_config: Any) -> AsyncIterator[str]:
    if connection.provider != "sim":
        yield connection.base_url
        return
    from batchgen.sim import SimConfig, run_sim

    async with run_sim(sim_config or SimConfig()) as sim:
        yield sim.base_url
