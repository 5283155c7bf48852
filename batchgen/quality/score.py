"""Score saved images against their prompts: the judging pool and the local scorer's loop.

Which images, and the kill journals, are in quality/items.py (its names are re-exported here).

Judge requests go through the images pool's machinery: the same RateLimiter (the autopilot:
slow start, 429s cut the rate and pause the pool, x-ratelimit headers trusted), the same error
taxonomy (auth and quota stop the session; 5xx, timeouts, network and unusable answers are
retried with full-jitter backoff up to --max-attempts; a 429 never uses up an attempt and never
fails an image), the same stall watchdog, and a --max-cost cap. Every verdict is on disk before
the next is counted (quality/store.py); each image key is journaled before its request leaves,
so after a kill -9 the next session can say which images may have been judged twice.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from batchgen.clock import SYSTEM_CLOCK, backoff_sleep
from batchgen.errors import Action, AttemptError, ErrorClass
from batchgen.limits import RateLimiter
from batchgen.limits.stop import RunControl
from batchgen.money import PriceTable
from batchgen.quality.items import (
    JOURNAL_PREFIX,
    TWICE_FILE,
    ImageItem,
    image_round,
    possibly_judged_twice,
    saved_images,
    settle_journals,
    sha256_file,
    to_score,
)
from batchgen.quality.store import ScoreStore
from batchgen.runner.control import PoolSettings
from batchgen.runner.pool import watch_stall
from batchgen.runner.tries import Backoff, Tries
from batchgen.runner.workers import run_workers
from batchgen.storage.cache import is_uri, read_image

__all__ = [
    "JOURNAL_PREFIX",
    "TWICE_FILE",
    "ImageItem",
    "JudgePool",
    "ScoreTally",
    "Scorer",
    "image_round",
    "possibly_judged_twice",
    "saved_images",
    "score_locally",
    "settle_journals",
    "sha256_file",
    "to_score",
]


class Scorer(Protocol):
    id: str
    kind: str


@dataclass
class ScoreTally:
    scored: int = 0
    failed: int = 0
    skipped: int = 0  # not judged: the session stopped (cap, auth, quota, Ctrl-C)
    attempts: int = 0
    retries: int = 0
    cost_usd: float = 0.0
    scores: list[float] = field(default_factory=list)


class _JudgeBudget:
    """--max-cost for judging: an estimate is held for each request in flight."""

    def __init__(self, cap_usd: float | None, prior_usd: float) -> None:
        self.cap = cap_usd
        self.spent = 0.0
        self.held = 0.0
        self.estimate = prior_usd

    def reserve(self) -> float | None:
        if self.cap is None:
            return 0.0
        if self.spent + self.held + self.estimate > self.cap + 1e-12:
            return None
        self.held += self.estimate
        return self.estimate

    def settle(self, held: float, cost: float) -> None:
        self.held -= held
        self.spent += cost
        self.estimate = max(self.estimate, cost * 1.5)


@dataclass(slots=True)
class _Spend:
    """What the answers about one image cost so far (every attempt's, failed ones too)."""

    billed: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    unknown: bool = False  # an answer's price could not be known: the row's cost is null


class JudgePool:
    """Judges images with a concurrency the limiter decides; one verdict row per image."""

    def __init__(
        self,
        judge: Any,
        limiter: RateLimiter,
        store: ScoreStore,
        *,
        run_id: str,
        settings: PoolSettings,
        control: RunControl,
        prices: PriceTable | None,
        cap_usd: float | None,
        journal_dir: Path,
        on_progress: Callable[[ScoreTally], None] | None = None,
    ) -> None:
        self.judge = judge
        self.limiter = limiter
        self.store = store
        self.run_id = run_id
        self.settings = settings
        self.control = control
        self.entry = prices.get(judge.model) if prices is not None else None
        prior = (
            self.entry.chat_usd(2000, 300) if self.entry and self.entry.billing == "chat" else 0.01
        )
        self.budget = _JudgeBudget(cap_usd, prior)
        self.tally = ScoreTally()
        self.on_progress = on_progress
        self.scorer_id = ""
        journal_dir.mkdir(parents=True, exist_ok=True)
        self.journal = journal_dir / f"{JOURNAL_PREFIX}{store.session:05d}.txt"
        self._jfd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def cost(self, usage: Any) -> tuple[float | None, str]:
        if usage is None:
            return 0.0, "none"
        if self.entry is None or self.entry.billing != "chat":
            return None, "unknown"
        return self.entry.chat_usd(
            usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
        ), "usage"

    def _charge(self, spend: _Spend, usage: Any) -> float | None:
        """One answer's cost, added to the image's spend (``None``: the price is unknown)."""
        cost, source = self.cost(usage)
        spend.unknown |= source == "unknown"
        spend.billed += cost or 0.0
        if usage is not None:
            spend.prompt_tokens += usage.prompt_tokens
            spend.completion_tokens += usage.completion_tokens
        return cost

    async def run(self, items: list[ImageItem], scorer_id: str) -> ScoreTally:
        self.scorer_id = scorer_id

        async def feed(send: MemoryObjectSendStream[ImageItem]) -> None:
            try:
                for item in items:
                    send.send_nowait(item)  # the channel holds them all
            finally:
                send.close()

        try:
            await run_workers(
                feed,
                self._work,
                workers=min(
                    self.settings.concurrency, self.limiter.concurrency_cap, max(1, len(items))
                ),
                buffer=len(items) or 1,
                control=self.control,
                watchdog=partial(
                    watch_stall,
                    self.limiter,
                    self.control,
                    self.settings.stall_timeout_s,
                    SYSTEM_CLOCK,
                ),
            )
        finally:
            os.close(self._jfd)
        # the session ended without a kill: every sent image has its row (or never got one)
        self.journal.unlink(missing_ok=True)
        return self.tally

    async def _work(self, receive: Any) -> None:
        async with receive:
            async for item in receive:
                if self.control.stopping:
                    self.tally.skipped += 1
                    continue
                row = await self._judge_one(item)
                if row is None:
                    self.tally.skipped += 1
                    continue
                await anyio.to_thread.run_sync(self.store.add, [row])
                if row["status"] == "ok":
                    self.tally.scored += 1
                    self.tally.scores.append(row["score"])
                else:
                    self.tally.failed += 1
                if self.on_progress:
                    self.on_progress(self.tally)

    async def _judge_one(self, item: ImageItem) -> dict[str, Any] | None:
        data = await anyio.to_thread.run_sync(
            _image_bytes, self.store.folder.parent, item.image_path
        )
        ext = Path(item.image_path).suffix.lstrip(".")
        number, started = 0, time.time()
        spend = _Spend()
        tries = Tries()
        backoff = Backoff(self.settings.backoff_base_s, self.settings.backoff_max_s, tries)
        while True:
            if self.control.stopping:
                return None
            held = self.budget.reserve()
            if held is None:
                self.control.stop(ErrorClass.BUDGET, "--max-cost reached while judging")
                return None
            ticket = None
            cost: float | None = 0.0
            try:
                with self.control.interruptible():
                    ticket = await self.limiter.admit(1)
                if ticket is None or self.control.stopping:
                    return None
                number += 1
                self.tally.attempts += 1
                os.write(self._jfd, f"{item.key}\n".encode())
                t0 = anyio.current_time()
                try:
                    verdict = await self.judge.judge(
                        item.prompt, data, ext, timeout=self.settings.timeout
                    )
                except AttemptError as exc:
                    cost = self._charge(spend, exc.usage)
                    if exc.error_class is ErrorClass.RATE_LIMIT:
                        self.limiter.on_throttled(
                            ticket, exc.retry_after_s, exc.ratelimit, exc.message, exc.code or ""
                        )
                        continue
                    self.limiter.observe_headers(exc.ratelimit)
                    self.limiter.on_other()
                    if exc.error_class.action is Action.STOP_RUN:
                        self.control.stop(exc.error_class, str(exc))
                        return None
                    if exc.error_class.retryable:
                        tries.failures += 1
                    if exc.error_class.retryable and tries.failures < self.settings.max_attempts:
                        self.tally.retries += 1
                        with self.control.interruptible():
                            await backoff_sleep(backoff.delay(exc))
                        continue
                    return self._row(item, number, started, spend, error=exc)
                cost = self._charge(spend, verdict.usage)
                self.limiter.on_ok(ticket, verdict.ratelimit)
                row = self._row(item, number, started, spend)
                row.update(
                    score=verdict.score,
                    defects=verdict.defects,
                    reasons=verdict.reasons,
                    request_id=verdict.request_id,
                    latency_s=anyio.current_time() - t0,
                )
                return row
            finally:
                if ticket is not None:
                    self.limiter.leave(ticket)
                if held is not None:
                    self.budget.settle(held, cost or 0.0)
                    self.tally.cost_usd += cost or 0.0

    def _row(
        self,
        item: ImageItem,
        number: int,
        started: float,
        spend: _Spend,
        error: AttemptError | None = None,
    ) -> dict[str, Any]:
        row: dict[str, Any] = {
            "run_id": self.run_id,
            "session": self.store.session,
            "job_id": item.job_id,
            "image_path": item.image_path,
            "image_sha256": item.sha256,
            "round": item.round,
            "scorer": self.scorer_id,
            "status": "ok" if error is None else "error",
            "attempts": number,
            "input_tokens": spend.prompt_tokens,
            "output_tokens": spend.completion_tokens,
            "cost_usd": None if spend.unknown else spend.billed,
            "cost_source": "unknown"
            if spend.unknown
            else ("usage" if spend.prompt_tokens else "none"),
            "scored_at": time.time(),
            "latency_s": time.time() - started,
        }
        if error is not None:
            row.update(
                error_class=error.error_class.value,
                error_message=error.message[:2000],
                request_id=error.request_id,
            )
        return row


async def score_locally(
    scorer: Any,
    items: list[ImageItem],
    store: ScoreStore,
    *,
    run_id: str,
    control: RunControl,
    batch: int = 16,
    on_progress: Callable[[ScoreTally], None] | None = None,
) -> ScoreTally:
    """A local scorer (CLIP): batches in a worker thread, one part file per batch."""
    tally = ScoreTally()
    run_dir = store.folder.parent
    for start in range(0, len(items), batch):
        if control.stopping:
            tally.skipped += len(items) - start
            break
        chunk = items[start : start + batch]
        t0 = time.time()
        results = await anyio.to_thread.run_sync(
            scorer.score_batch, [(i.prompt, _image_source(run_dir, i.image_path)) for i in chunk]
        )
        rows = []
        for item, (score, reasons) in zip(chunk, results, strict=True):
            rows.append(
                {
                    "run_id": run_id,
                    "session": store.session,
                    "job_id": item.job_id,
                    "image_path": item.image_path,
                    "image_sha256": item.sha256,
                    "round": item.round,
                    "scorer": scorer.id,
                    "score": score,
                    "defects": [],
                    "reasons": reasons,
                    "status": "ok",
                    "attempts": 1,
                    "cost_usd": 0.0,
                    "cost_source": "local",
                    "scored_at": time.time(),
                    "latency_s": (time.time() - t0) / len(chunk),
                }
            )
        await anyio.to_thread.run_sync(store.add, rows)
        tally.scored += len(rows)
        tally.scores.extend(r["score"] for r in rows)
        if on_progress:
            on_progress(tally)
    return tally


def _image_bytes(run_dir: Path, logged: str) -> bytes:
    """The image a log row names, a file of the run or an object (``--images-to``)."""
    data = read_image(run_dir, logged)
    if data is None:
        msg = f"cannot read the image {logged}"
        raise FileNotFoundError(msg)
    return data


def _image_source(run_dir: Path, logged: str) -> Path | io.BytesIO:
    """What a local scorer opens: the run's own file, or an object's bytes (--images-to)."""
    return io.BytesIO(_image_bytes(run_dir, logged)) if is_uri(logged) else run_dir / logged
