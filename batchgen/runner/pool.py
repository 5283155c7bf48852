"""The worker pool: a library function that takes an iterator of jobs, a provider, a limiter
and a sink. No CLI inside, so it can run one shard of a job file on many machines later.

    jobs ──► producer (reads batches in a thread) ──► bounded channel ──► N workers
                                                                          │ JobRunner: budget,
                                                                          │ limiter,
                                                                          │ provider, images, row
                                                                          ▼
                                                                        sink (RunLogWriter)

Memory stays flat: the channel holds at most 2 × concurrency jobs, and the producer reads the
job file only as fast as the workers take jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchgen.clock import SYSTEM_CLOCK, Clock
from batchgen.errors import ErrorClass
from batchgen.jobs.model import Job
from batchgen.limits import RateLimiter
from batchgen.limits.stop import RunControl
from batchgen.money import Budget, PriceTable
from batchgen.provider.base import Provider
from batchgen.runner.attempt import JobRunner
from batchgen.runner.budget_gate import BudgetGate
from batchgen.runner.control import PoolSettings, PoolTally, RowContext, Sink
from batchgen.runner.reach import Reachability

__all__ = ["PoolSettings", "PoolTally", "RowContext", "RunControl", "run_pool", "watch_stall"]

_READ_BATCH = 256
_DEFAULT_SETTINGS = PoolSettings()


async def run_pool(
    jobs: Iterable[Job],
    provider: Provider,
    limiter: RateLimiter,
    sink: Sink,
    *,
    context: RowContext,
    settings: PoolSettings = _DEFAULT_SETTINGS,
    control: RunControl | None = None,
    prices: PriceTable | None = None,
    budget: Budget | None = None,
    cheapest_job_usd: float = 0.0,
    clock: Clock = SYSTEM_CLOCK,
    inflight: set[str] | None = None,
    on_progress: Callable[[PoolTally], None] | None = None,
) -> PoolTally:
    """Run every job once through its attempts; returns the tally.

    Stops dispatching when ``control`` is stopped (auth/quota from a worker, budget, a signal);
    jobs never taken from ``jobs`` get no row (the resume scan sees them as never attempted).

    ``clock`` stamps the rows and times the backoff and the stall watchdog (tests pass
    ``batchgen.testing.VirtualClock`` with ``run_virtual``). A list or tuple of jobs is read
    on the event loop; any other iterable (a job file's reader) in a worker thread.
    """
    control = control or RunControl()
    tally = PoolTally()
    # without a cap there is nothing to reserve: spend is still summed from the rows
    gate = None
    if budget is not None and (budget.cap_usd is not None or budget.monthly is not None):
        gate = BudgetGate(budget, control, cheapest_job_usd)
    reach = Reachability(clock.monotonic(), window_s=settings.unreachable_window_s)
    runner = JobRunner(
        provider=provider,
        limiter=limiter,
        sink=sink,
        settings=settings,
        context=context,
        control=control,
        clock=clock,
        prices=prices,
        budget_gate=gate,
        inflight=inflight if inflight is not None else set(),
        tally=tally,
        reach=reach,
    )
    # one worker per slot the limiter may open; the limiter decides how many send at once
    workers = min(settings.concurrency, limiter.concurrency_cap)
    send, receive = anyio.create_memory_object_stream[Job](max(2, 2 * workers))
    async with anyio.create_task_group() as outer:
        outer.start_soon(watch_stall, limiter, control, settings.stall_timeout_s, clock, reach)
        # control.cancel() cancels the workers' requests in flight (the scope around them)
        with anyio.CancelScope() as workers_scope, control.cancels(workers_scope):
            async with anyio.create_task_group() as tg:
                in_memory = isinstance(jobs, Sequence)
                tg.start_soon(_produce, iter(jobs), send, control, in_memory)
                async with receive:
                    for _ in range(workers):
                        tg.start_soon(_work, receive.clone(), runner, tally, on_progress)
        outer.cancel_scope.cancel()
    return tally


async def watch_stall(
    limiter: RateLimiter,
    control: RunControl,
    timeout_s: float,
    clock: Clock = SYSTEM_CLOCK,
    reach: Reachability | None = None,
) -> None:
    """Stop the run when the provider has answered nothing but 429s for ``timeout_s``, or
    (``reach``) nothing at all, every request failing with a network error: the jobs stay
    pending for resume, none is failed for rate limiting or an unreachable endpoint."""
    every = max(0.05, min(5.0, timeout_s / 20))
    if reach is not None:
        every = max(0.05, min(every, reach.window_s / 5))
    while not control.stopping:
        await clock.sleep(every)
        down = reach.down(clock.monotonic()) if reach is not None else None
        if down is not None:
            control.stop(ErrorClass.NETWORK, down)
            return
        stalled = limiter.stalled_s()
        if limiter.throttled_since_progress and stalled >= timeout_s:
            control.stop(
                ErrorClass.RATE_LIMIT,
                f"no progress for {stalled:.0f}s: the provider answered every request with 429 "
                f"({limiter.throttled_since_progress} in a row); the jobs left are pending",
            )
            return


async def _produce(
    jobs: Iterator[Job],
    send: MemoryObjectSendStream[Job],
    control: RunControl,
    in_memory: bool = False,
) -> None:
    async with send:
        while not control.stopping:
            # the job file is read in a thread, a batch at a time, off the event loop
            if in_memory:
                batch = list(islice(jobs, _READ_BATCH))
            else:
                batch = await anyio.to_thread.run_sync(lambda: list(islice(jobs, _READ_BATCH)))
            if not batch:
                return
            for job in batch:
                if control.stopping:
                    return
                try:
                    # no checkpoint per job while the channel has room (anyio's send()
                    # yields to the loop on every call): waits only when it is full
                    try:
                        send.send_nowait(job)
                    except anyio.WouldBlock:
                        await send.send(job)
                except anyio.BrokenResourceError:
                    return  # every worker has stopped


async def _work(
    receive: MemoryObjectReceiveStream[Job],
    runner: JobRunner,
    tally: PoolTally,
    on_progress: Callable[[PoolTally], None] | None,
) -> None:
    async with receive:
        while True:
            # a worker yields on every request anyway: take the next job without the extra
            # checkpoint of receive() unless the channel is empty
            try:
                job = receive.receive_nowait()
            except anyio.WouldBlock:
                try:
                    job = await receive.receive()
                except anyio.EndOfStream:
                    return
            except anyio.EndOfStream:
                return
            if runner.control.stopping:
                return  # the job gets no row: never attempted, still pending
            tally.taken += 1
            await runner.run(job, runner.clock.wall())
            if on_progress:
                on_progress(tally)
