"""One scoring session: which scorer, where it talks to, the pool, and what it cost.

Shared by ``batchgen score`` and by ``batchgen resume --regenerate-below`` (which scores each
round's new images with the scorer of the last ``score``). The API key is read from the
environment when the session starts and is never written: ``RUN_DIR/scorer.json`` records the
provider, base URL and the *name* of the key's variable, as run.json does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio

from batchgen.config import PoolConfig
from batchgen.errors import ErrorClass, UsageError
from batchgen.limits import RateLimiter
from batchgen.limits.stop import RunControl
from batchgen.quality.clip import DEFAULT_CLIP_MODEL, ClipScorer, ClipUnavailable
from batchgen.quality.judge import DEFAULT_RUBRIC, OpenAIJudge, rubric_id
from batchgen.quality.score import (
    JudgePool,
    ScoreTally,
    score_locally,
    settle_journals,
    to_score,
)
from batchgen.quality.store import ScoreStore, next_session, remove_temp_files, save_scorer
from batchgen.runner.control import PoolSettings
from batchgen.runner.signals import Say, watch_signals

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
    return ClipScorer(spec.model)


async def score_run(
    run_dir: Path,
    spec: ScorerSpec,
    *,
    run_id: str,
    pool: PoolConfig,
    prices: Any,
    cap_usd: float | None,
    connection: Any = None,
    sim_config: Any = None,
    local_scorer: Any = None,
    rescore: bool = False,
    say: Say | None = None,
    extra_control: RunControl | None = None,
    quiet: bool = False,
) -> ScoreResult:
    """Score every saved image without a verdict of ``spec``; rows land in scores/.
    ``connection`` (a judge's: provider, base_url, api_key) is resolved by the caller;
    ``say(text, style)`` gets the progress lines and the signal notes (None: silent)."""

    remove_temp_files(run_dir)
    state_dir = run_dir / "state"
    # journals of killed sessions: their unsaved images are judged again now, and recorded
    twice = await anyio.to_thread.run_sync(settle_journals, run_dir, state_dir)
    items, already = await anyio.to_thread.run_sync(to_score, run_dir, spec.id, rescore)
    save_scorer(run_dir, spec.public())
    control = extra_control or RunControl()
    store = ScoreStore(run_dir, next_session(run_dir))
    tally = ScoreTally()
    progress = _Progress(say if not quiet else None, len(items))
    try:
        if not items:
            pass
        elif spec.kind == "clip":
            scorer = local_scorer or load_local_scorer(spec)
            tally = await score_locally(
                scorer, items, store, run_id=run_id, control=control, on_progress=progress
            )
        else:
            settings = PoolSettings.from_config(pool)
            limiter = RateLimiter(
                pool.rpm,
                None,
                concurrency=pool.concurrency,
                adapt=pool.adaptive,
                max_pause_s=pool.max_pause_s,
            )
            async with (
                _base_url(connection, sim_config) as base_url,
                anyio.create_task_group() as tg,
            ):
                judge = OpenAIJudge(
                    base_url,
                    connection.api_key,
                    spec.model,
                    rubric=spec.rubric,
                    detail=spec.detail,
                    connections=settings.concurrency + 4,
                )
                if say is not None:
                    tg.start_soon(watch_signals, control, settings.grace_s, say)
                try:
                    judges = JudgePool(
                        judge,
                        limiter,
                        store,
                        run_id=run_id,
                        settings=settings,
                        control=control,
                        prices=prices,
                        cap_usd=cap_usd,
                        journal_dir=state_dir,
                        on_progress=progress,
                    )
                    progress.status = limiter.describe
                    tally = await judges.run(items, spec.id)
                finally:
                    await judge.aclose()
                    tg.cancel_scope.cancel()
    finally:
        await anyio.to_thread.run_sync(lambda: store.close(compact=True))
    mean = statistics.fmean(tally.scores) if tally.scores else None
    return ScoreResult(
        tally,
        already,
        len(items),
        twice,
        control.reason,
        control.message,
        mean,
    )


class _Progress:
    """A plain line every few seconds: images scored of those to score, spend, limits."""

    EVERY_S = 3.0

    def __init__(self, say: Say | None, total: int) -> None:
        self.say = say
        self.total = total
        self.status: Any = None
        self.started = time.monotonic()
        self.last = self.started

    def __call__(self, tally: ScoreTally) -> None:
        now = time.monotonic()
        done = tally.scored + tally.failed
        if self.say is None or (now - self.last < self.EVERY_S and done < self.total):
            return
        self.last = now
        line = (
            f"[{now - self.started:7.1f}s] scored {done}/{self.total} · failed {tally.failed} "
            f"· ${tally.cost_usd:.4f}"
        )
        if self.status is not None:
            line += f" · limits: {self.status()}"
        self.say(line, None)


@contextlib.asynccontextmanager
async def _base_url(connection: Any, sim_config: Any) -> AsyncIterator[str]:
    if connection.provider != "sim":
        yield connection.base_url
        return
    # lazy: the simulator (aiohttp.web, Pillow rendering) loads only for a judge on
    # --provider sim
    from batchgen.sim import SimConfig, run_sim

    async with run_sim(sim_config or SimConfig()) as sim:
        yield sim.base_url


def scorer_spec(
    flags: Mapping[str, Any], saved: dict[str, Any] | None, recorded: Mapping[str, Any]
) -> ScorerSpec:
    """The scorer the flags ask for (judge, scorer, clip_model, rubric, detail, threshold,
    provider, base_url, api_key_env); without judge/scorer, the last `score`'s (``saved``)."""

    judge = flags.get("judge")
    kind = flags.get("scorer") or ("judge" if judge else None)
    threshold = flags.get("threshold")
    if kind is None:
        if saved is None:
            msg = "say how to score: --judge MODEL (a vision chat model) or --scorer clip"
            raise UsageError(msg)
        spec = ScorerSpec.from_saved(saved)
        return dataclasses.replace(spec, threshold=threshold) if threshold is not None else spec
    if kind == "judge" and not judge:
        raise UsageError("--scorer judge needs --judge MODEL (e.g. --judge gpt-4o-mini)")
    base_url = flags.get("base_url")
    provider = flags.get("provider") or ("openai" if base_url else recorded.get("provider"))
    return ScorerSpec(
        kind=kind,
        model=str(flags.get("clip_model") or DEFAULT_CLIP_MODEL) if kind == "clip" else str(judge),
        rubric=_rubric(flags.get("rubric")),
        detail=flags.get("detail") or "low",
        provider=provider,
        base_url=base_url or (recorded.get("base_url") if provider != "sim" else None),
        api_key_env=flags.get("api_key_env") or recorded.get("api_key_env"),
        threshold=threshold if threshold is not None else DEFAULT_THRESHOLD,
    )


def _rubric(path: str | None) -> str:
    if not path:
        return DEFAULT_RUBRIC
    try:
        rubric = Path(path).read_text("utf-8").strip()
    except OSError as exc:
        raise UsageError(f"--rubric {path}: {exc.strerror or exc}") from exc
    if not rubric:
        raise UsageError(f"--rubric {path} is empty")
    return rubric


def local_scorer_or_usage_error(spec: ScorerSpec) -> Any:
    if spec.kind != "clip":
        return None

    try:
        return load_local_scorer(spec)
    except ClipUnavailable as exc:
        raise UsageError(str(exc)) from exc


def require_judge_price(spec: ScorerSpec, prices: Any, max_cost: float | None) -> None:
    """--max-cost cannot bound what it cannot price: a judge must be in the price table."""
    if max_cost is None or spec.kind != "judge":
        return
    entry = prices.get(spec.model)
    if entry is None or entry.billing != "chat":
        msg = (
            f"--max-cost needs the judge's price: {spec.model!r} is not a chat model of the "
            'price table; add it with --prices FILE ([models."NAME"] billing = "chat", '
            "input_per_1m, output_per_1m, source, as_of)"
        )
        raise UsageError(msg)
