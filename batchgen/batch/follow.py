"""Following the run's batches until each is collected: polling, progress, the deadline.

Polling backs off: the first interval is ``poll_s``, doubled (up to ``poll_max_s``) while no
batch changes, back to ``poll_s`` when one does. Each change prints the batch's status and
request counts. A batch that ends (completed, failed, expired, cancelled) is collected at once.

**The deadline** (``--deadline``): the provider's progress so far gives each running batch a
pace (requests finished per second since it was first seen running) and so a projected end.
When a batch's projected end is after the deadline and the time left is no more than what the
live API needs for the requests still unfinished (the quote's minimum wall time under the pool
settings, plus a margin), what is left is cancelled; the cancelled batches' partial output is
collected, and then the caller sends the rest live. The margin: two polls, a tenth of the live
estimate, time for the cancel to land (5 % of the deadline's span, at most the 10 minutes
OpenAI allows itself), and 2 s for the live session to start. Nothing is paid twice: a job
goes live only if no batch line of it was billed.

Ctrl-C stops following (``RunControl``); it never cancels a batch — they run on at the provider,
and ``batchgen collect RUN_DIR`` picks them up.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import anyio

from batchgen import faultpoints
from batchgen.batch.collect import collect_part
from batchgen.batch.context import BatchContext
from batchgen.batch.state import Part
from batchgen.batch.submit import update_part
from batchgen.errors import AttemptError
from batchgen.money.quote import DEFAULT_LATENCY_S, min_wall_time

# the live session's own start after the cut-over: the job file re-checked, the log read, the
# pool started (about a second on a busy 2-core machine)
_LIVE_START_S = 2.0


@dataclass(slots=True)
class _Pace:
    t0: float  # monotonic, when first seen running
    done0: int
    t: float = 0.0
    done: int = 0

    def projected_left_s(self, total: int) -> float:
        """Seconds until every request is finished at the pace seen so far (inf: no pace)."""
        rate = (self.done - self.done0) / (self.t - self.t0) if self.t > self.t0 else 0.0
        return (total - self.done) / rate if rate > 0 else math.inf


async def follow(ctx: BatchContext) -> None:
    """Poll until every open part is collected, the session stops, or the deadline cuts over."""
    interval = ctx.options.poll_s
    paces: dict[int, _Pace] = {}
    if ctx.options.cancel_open:
        await cancel_open(ctx)
    while not ctx.control.stopping:
        open_parts = ctx.state.open_parts()
        if not open_parts:
            return
        changed = False
        for part in open_parts:
            if ctx.control.stopping:
                return
            if not part.terminal:
                batch = await ctx.api.retrieve_batch(str(part.batch_id))
                faultpoints.hit("batch:poll")
                if update_part(part, batch):
                    changed = True
                    ctx.state.record(part)
                    _show(ctx, part)
                _note_pace(paces, part)
            if part.terminal and not ctx.control.stopping:
                await collect_part(ctx, part)
                ctx.say(f"collected {part.label()}: {_counts(part)}")
                changed = True
        if ctx.options.deadline_at is not None and not ctx.cutover and _too_slow(ctx, paces):
            ctx.cutover = True
            ctx.say(
                "deadline: the batches would finish too late; cancelling what is "
                "left of them, then the rest goes to the live API",
                warning=True,
            )
            await cancel_open(ctx)
            changed = True
        interval = ctx.options.poll_s if changed else min(interval * 2, ctx.options.poll_max_s)
        await _sleep(ctx, interval)


async def cancel_open(ctx: BatchContext) -> int:
    """Ask the provider to cancel every open, unfinished batch of the run; returns how many."""
    n = 0
    for part in ctx.state.open_parts():
        if part.batch_id is None or part.terminal or part.cancel_requested:
            continue
        try:
            batch = await ctx.api.cancel_batch(part.batch_id)
        except AttemptError as exc:
            if exc.http_status not in (400, 409):  # it ended meanwhile: nothing to cancel
                raise
            batch = await ctx.api.retrieve_batch(part.batch_id)
        part.cancel_requested = True
        update_part(part, batch)
        ctx.state.record(part)
        _show(ctx, part)
        n += 1
    return n


def _note_pace(paces: dict[int, _Pace], part: Part) -> None:
    if part.status != "in_progress":
        return
    done = part.counts.get("completed", 0) + part.counts.get("failed", 0)
    now = time.monotonic()
    pace = paces.get(part.part)
    if pace is None:
        paces[part.part] = _Pace(now, done, now, done)
    else:
        pace.t, pace.done = now, done


def _too_slow(ctx: BatchContext, paces: dict[int, _Pace]) -> bool:
    """True when waiting longer would leave the live API too little time (module doc)."""
    running = [p for p in ctx.state.open_parts() if not p.terminal and not p.cancel_requested]
    if not running:
        return False
    left_s = time.time()
    deadline = ctx.options.deadline_at or math.inf
    unfinished = 0
    projected = 0.0
    for part in running:
        total = part.counts.get("total") or part.jobs
        done = part.counts.get("completed", 0) + part.counts.get("failed", 0)
        unfinished += max(total - done, 0)
        pace = paces.get(part.part)
        projected = max(projected, pace.projected_left_s(total) if pace else math.inf)
    if left_s + projected <= deadline:
        return False  # at the pace so far every batch ends in time
    live_s = _live_seconds(ctx, unfinished)
    # a cancel takes time to land (OpenAI: up to 10 minutes): allow 5 % of the deadline's
    # span for it, at most 10 minutes, plus two polls and a tenth of the live estimate
    cancel_s = min(600.0, 0.05 * max(deadline - ctx.started_at, 0.0))
    margin = 2 * ctx.options.poll_max_s + 0.1 * live_s + cancel_s + _LIVE_START_S
    return left_s + live_s + margin >= deadline


def _live_seconds(ctx: BatchContext, requests: int) -> float:
    latency = ctx.options.assume_latency_s
    if latency is None:
        latency = DEFAULT_LATENCY_S
    pool = ctx.pool  # --no-adapt's fixed in-flight count too (concurrency_cap)
    wall = min_wall_time(
        requests,
        requests,
        requests * latency,
        rpm=pool.rpm,
        ipm=pool.ipm,
        concurrency=pool.concurrency_cap,
    )
    return wall.seconds


async def _sleep(ctx: BatchContext, seconds: float) -> None:
    with ctx.control.interruptible():
        await anyio.sleep(seconds)


def _counts(part: Part) -> str:
    c = part.counts
    return f"{c.get('completed', 0)} ok, {c.get('failed', 0)} failed of {c.get('total', part.jobs)}"


def _show(ctx: BatchContext, part: Part) -> None:
    ctx.say(f"{part.label()}: {part.status} · {_counts(part)}")
