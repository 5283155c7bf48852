"""One job through its attempts: limiter → provider → images → a log row per attempt.

The retry decision is tenacity's, driven by the error taxonomy: only classes whose action is
RETRY are retried, with exponential backoff and full jitter, or exactly the server's
Retry-After when it gave one. Auth and quota stop the whole run through the RunControl.

A 429 for rate or concurrency is the provider pacing the pool, not a failed attempt: the
limiter learns from it and pauses the pool, and the job is sent again without using up one of
its ``max_attempts`` (those are for server, network, timeout and invalid-response faults). Only
a run that makes no progress at all for ``stall_timeout_s`` stops (the pool's watchdog), and
then its jobs stay pending.
"""

from __future__ import annotations

import anyio
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
)

from batchgen import faultpoints
from batchgen.clock import Clock, backoff_sleep
from batchgen.errors import Action, AttemptError, ErrorClass
from batchgen.jobs.model import Job
from batchgen.limits import Gate, RateLimiter, Ticket
from batchgen.limits.stop import RunControl
from batchgen.money import PriceTable, cost_of_attempt
from batchgen.provider.base import GenerateResult, Provider
from batchgen.runlog.row import Row
from batchgen.runlog.schema import STATUS_ERROR, STATUS_OK, STATUS_SKIPPED
from batchgen.runner.budget_gate import BudgetGate
from batchgen.runner.control import PoolSettings, PoolTally, RowContext, Sink
from batchgen.runner.reach import Reachability
from batchgen.runner.rows import attempt_row, routed, usage_into
from batchgen.runner.tries import Backoff, Tries, Try


class _Stopped(Exception):
    """The run is stopping: do not start (another) attempt of this job."""


class _OverBudget(Exception):
    """This attempt's worst case does not fit under --max-cost: the job is not sent."""


class JobRunner:
    """Runs one job at a time for a worker; shared state lives in the pool's objects."""

    def __init__(
        self,
        *,
        provider: Provider,
        limiter: Gate,
        sink: Sink,
        settings: PoolSettings,
        context: RowContext,
        control: RunControl,
        clock: Clock,
        prices: PriceTable | None,
        budget_gate: BudgetGate | None,
        inflight: set[str],
        tally: PoolTally,
        reach: Reachability | None = None,
    ) -> None:
        self.provider = provider
        self.limiter = limiter
        # the autopilot's gate lets a request out without an await when nothing holds it
        # (RateLimiter.try_admit); any other gate, or one that adds to admit (the cluster's
        # ClusterGate), is awaited
        self._admit_now = None
        if isinstance(limiter, RateLimiter) and type(limiter).admit is RateLimiter.admit:
            self._admit_now = limiter.try_admit
        self.sink = sink
        self.settings = settings
        self.ctx = context
        self.control = control
        self.clock = clock
        self.prices = prices
        self.budget_gate = budget_gate
        self.inflight = inflight
        self.tally = tally
        # one attempt: with a budget, each holds its worst case first (no coroutine level
        # more for a run without one)
        self._one_attempt = self._attempt if budget_gate is None else self._reserved_attempt
        self.reach = reach or Reachability(
            clock.monotonic(), window_s=settings.unreachable_window_s
        )
        # jobs whose last attempt failed (retryably) while the run was stopping: the row is
        # not final and the job gets a pending row, not "failed for good"
        self._cut: set[str] = set()

    def _again(self, exc: BaseException, tries: Tries) -> bool:
        """Send this job again? Retryable class, the run going on, attempts left (a 429 for
        rate uses none up)."""
        if not isinstance(exc, AttemptError) or self.control.stopping:
            return False
        if exc.error_class is ErrorClass.RATE_LIMIT or exc.rerouted:
            return True
        return exc.retryable and tries.failures < self.settings.max_attempts

    async def _backoff_sleep(self, seconds: float) -> None:
        """The wait before a job's next attempt (none under ``batchgen.testing.set_testing``);
        a stop of the run cuts it short."""
        with self.control.interruptible():
            await backoff_sleep(seconds, self.clock)

    async def run(self, job: Job, queued_at: float) -> None:
        tried = Try(job=job, queued_at=queued_at)  # the job's attempts, counted
        try:
            try:
                # most jobs take one attempt: no retry machinery, no backoff made for them
                await self._one_attempt(tried)
                return
            except AttemptError as exc:
                if not self._again(exc, tried):
                    self._ended(job, exc, queued_at)
                    return
                backoff = Backoff(self.settings.backoff_base_s, self.settings.backoff_max_s, tried)
                await self._backoff_sleep(backoff.delay(exc))
            await self._retry(tried, backoff)
        except _Stopped:
            self.skip(job, queued_at, self.control.reason or ErrorClass.CANCELLED)
        except _OverBudget:  # only the gate refuses a job for its budget
            gate = self.budget_gate
            message = gate.budget.exhausted_message() if gate is not None else ""
            self.skip(job, queued_at, ErrorClass.BUDGET, message)
        except AttemptError as exc:
            self._ended(job, exc, queued_at)

    def _ended(self, job: Job, exc: AttemptError, queued_at: float) -> None:
        """The job's last attempt failed and it is not sent again. Its row is final, except a
        429's (a 429 is never final) and a retryable error's while the run was stopping (a
        server error or a reset during Ctrl-C): the job gets a pending row."""
        cut = job.id in self._cut
        self._cut.discard(job.id)
        if exc.error_class is ErrorClass.RATE_LIMIT or cut:
            self.skip(job, queued_at, self.control.reason or ErrorClass.CANCELLED)

    async def _retry(self, tried: Try, backoff: Backoff) -> None:
        """Attempts after the first, decided by tenacity from the error taxonomy."""
        attempts = AsyncRetrying(
            stop=lambda _state: False,  # _again decides, from the job's own count
            wait=backoff,
            retry=retry_if_exception(lambda exc: self._again(exc, tried)),
            sleep=self._backoff_sleep,
            reraise=True,
        )
        async for attempt in attempts:
            with attempt:
                if self.control.stopping:
                    raise _Stopped
                await self._one_attempt(tried)

    async def _reserved_attempt(self, tried: Try) -> None:
        """Every attempt holds its own worst case: a provider that bills a failed attempt
        (a 200 with a broken image) cannot push the spend past the cap on the retry."""
        assert self.budget_gate is not None  # (_one_attempt is this only with a gate)
        reservation = await self.budget_gate.reserve(tried.job)
        if reservation is None:
            raise _Stopped if self.control.stopping else _OverBudget
        billed = [0.0]
        try:
            billed[0] = await self._attempt(tried, billed)
        finally:
            self.budget_gate.settle(reservation, billed[0])

    async def _attempt(self, tried: Try, billed: list[float] | None = None) -> float:
        """One request; returns its cost. A failed attempt's billed cost goes to ``billed``."""
        job = tried.job
        tried.number += 1
        ticket: Ticket | None = None
        waited_from = self.clock.monotonic()
        if self._admit_now is not None and not self.control.stopping:
            ticket = self._admit_now(job.n)
        if ticket is None:
            with self.control.interruptible():
                ticket = await self.limiter.admit(job.n)
        if ticket is None or self.control.stopping:
            if ticket is not None:
                self.limiter.leave(ticket)
            raise _Stopped
        tried.started = self.clock.wall()
        tried.t0 = t0 = self.clock.monotonic()
        tried.wait_s = t0 - waited_from
        # in flight from before the request until its row is appended (the log writer copies
        # this set at each flush: after a crash it names the jobs possibly billed twice)
        if not self.provider.adds_inflight:
            # (a Router adds it itself, when the request leaves its endpoint's limiter)
            self.inflight.add(job.id)
        try:
            try:
                result = await self.provider.generate(job, timeout=self.settings.timeout)
            except AttemptError as exc:
                cost = self._on_error(tried, exc, ticket)
                if billed is not None:
                    billed[0] = cost
                raise
            except anyio.get_cancelled_exc_class():
                cancelled = AttemptError(
                    ErrorClass.CANCELLED, "cancelled in flight by the stop of the run"
                )
                self._record_error(tried, cancelled, final=True)
                raise
            return await self._save(tried, result, billed, ticket)
        finally:
            self.inflight.discard(job.id)
            self.limiter.leave(ticket)

    async def _save(
        self, tried: Try, result: GenerateResult, billed: list[float] | None, ticket: Ticket
    ) -> float:
        """An answer: its images onto the disk, then its row; returns its cost."""
        now = self.clock.monotonic()
        latency = now - tried.t0
        self.limiter.on_ok(ticket, result.ratelimit)
        self.reach.answered(now)
        job, store, images = tried.job, self.ctx.images, result.images
        tag = self.ctx.tag_of(job.id)
        try:
            if store.inline(images):  # a small answer into the page cache
                paths, nbytes = store.save(job.id, images, tag)
            else:  # a large one, or an upload: in a worker thread
                paths, nbytes = await anyio.to_thread.run_sync(store.save, job.id, images, tag)
        except OSError as exc:  # disk full, read-only: the run stops (class disk)
            raise self._unsaved(tried, result, exc, billed) from None
        if self.ctx.checker is not None:  # queued for the background checks; never waits
            self.ctx.checker.submit(paths, images)
        # a crash here leaves images without their row: resume adopts them (runlog.orphans)
        faultpoints.hit("image:before_row")
        price, source = (
            cost_of_attempt(self.prices, job, result.usage, len(images))
            if self.prices is not None
            else (None, "unknown")
        )
        revised = None
        for image in images:
            if image.revised_prompt:
                revised = image.revised_prompt
                break
        row = self._row(tried, latency)
        row.update(
            {
                "status": STATUS_OK,
                "final": True,
                "http_status": result.http_status,
                "image_paths": paths,
                "image_count": len(paths),
                "image_bytes": nbytes,
                "revised_prompt": revised,
                "cost_usd": price,
                "cost_source": source,
                "request_id": result.request_id,
                "error_message": result.note,
            }
        )
        if result.endpoint is not None:  # a Router's answer (several endpoints)
            routed(row, result.endpoint, result.wait_s)
        if result.usage is not None:
            usage_into(row, result.usage)
        self.sink.append(row)
        self.tally.ok(job, len(paths), price or 0.0)
        return price or 0.0

    def _latency(self, tried: Try) -> float:
        return self.clock.monotonic() - tried.t0

    def _unsaved(
        self, tried: Try, result: GenerateResult, exc: OSError, billed: list[float] | None
    ) -> AttemptError:
        """An answer whose images could not be written: log it (at what it was billed) as
        class disk, which stops the run; the job stays pending for resume."""
        cost: float | None = 0.0
        if self.prices is not None:
            cost = cost_of_attempt(self.prices, tried.job, result.usage, len(result.images))[0]
        error = AttemptError(
            ErrorClass.DISK,
            f"the image could not be saved: {exc}",
            code="image_not_saved",
            request_id=result.request_id,
            billed_usd=cost or 0.0,
            usage=result.usage,
        )
        cost = self._on_error(tried, error)
        if billed is not None:
            billed[0] = cost
        return error

    def _on_error(self, tried: Try, exc: AttemptError, ticket: Ticket | None = None) -> float:
        """Record a failed attempt, act on its class; returns what the provider billed for it."""
        tries = tried
        if exc.error_class is ErrorClass.RATE_LIMIT:
            self.reach.answered(self.clock.monotonic())
            held = self.limiter.on_throttled(
                ticket, exc.retry_after_s, exc.ratelimit, exc.message, exc.code or ""
            )
            if (
                exc.retry_after_s is not None
                and exc.retry_after_s > held >= self.limiter.max_pause_s
            ):
                exc.message += f" [Retry-After {exc.retry_after_s:.0f}s capped to {held:.0f}s]"
            # never final: the job goes round again, or gets a pending row if the run stops
            return self._record_error(tried, exc, final=False)
        self.limiter.observe_headers(exc.ratelimit)
        if exc.error_class is not ErrorClass.NETWORK:
            self.limiter.on_other()  # (a network error is no answer: not progress either)
        if exc.action is Action.STOP_RUN:
            self.control.stop(exc.error_class, str(exc))
        if exc.retryable:
            tries.failures += 1
        exhausted = tries.failures >= self.settings.max_attempts
        now = self.clock.monotonic()
        self.reach.failed(exc.error_class, exc.message, now)
        if exc.error_class is ErrorClass.NETWORK:
            down = self.reach.down(now, job_exhausted=exhausted)
            if down is not None:
                self.control.stop(ErrorClass.NETWORK, down)
        if exc.action is Action.RETRY and self.control.stopping:
            # cut by the stop of the run, not failed for good: pending for resume
            self._cut.add(tried.job.id)
            return self._record_error(tried, exc, final=False)
        final = exc.action is not Action.RETRY or exhausted
        return self._record_error(tried, exc, final=final)

    def _record_error(self, tried: Try, exc: AttemptError, *, final: bool) -> float:
        # a 200 whose image was unusable still carries the usage the provider billed
        cost, source = exc.billed_usd, "none"
        if exc.usage is not None and self.prices is not None:
            billed, source = cost_of_attempt(self.prices, tried.job, exc.usage, 0)
            cost = billed or 0.0
        row = self._row(tried, self._latency(tried))
        usage_into(row, exc.usage)
        row.update(
            {
                "status": STATUS_ERROR,
                "final": final,
                "error_class": exc.error_class.value,
                "http_status": exc.http_status,
                "error_code": exc.code,
                "error_message": exc.message[:2000],
                "retry_after_s": exc.retry_after_s,
                "request_id": exc.request_id,
                "cost_usd": cost,
                "cost_source": source,
            }
        )
        if exc.endpoint is not None:
            routed(row, exc.endpoint, exc.wait_s)
        self.sink.append(row)
        self.tally.error(tried.job, exc.error_class, final, cost)
        return cost

    def skip(self, job: Job, queued_at: float, reason: ErrorClass, message: str = "") -> None:
        """The job was taken but never sent: it stays pending (budget, stop, cancel)."""
        row = self._row(Try(job=job, queued_at=queued_at), None)
        row.update(
            {
                "status": STATUS_SKIPPED,
                "final": True,
                "error_class": reason.value,
                "error_message": message or self.control.message or reason.diagnosis,
                "cost_usd": 0.0,
                "cost_source": "none",
            }
        )
        self.sink.append(row)
        self.tally.skipped(job, reason)

    def _row(self, tried: Try, latency: float | None) -> Row:
        return attempt_row(self.ctx, tried, self.clock.wall(), latency)
