"""Several endpoints in one run: a Provider that sends each attempt to an endpoint serving
the job's model, each endpoint behind its own RateLimiter (its own autopilot), so two keys of
1,200 rpm each sustain ~2,400 together.

    run_pool(jobs, Router(endpoints), router.gate, sink, ...)

The pool stays as it is: one worker pool, one job stream. Its own limiter (``router.gate``, a
:class:`SharedGate`) only bounds the workers (the sum of the endpoints' in-flight caps) and
keeps the stall watchdog fed; it never paces nor pauses, because pacing is per endpoint.
For each attempt the Router picks, among the live endpoints serving the model, the one whose
queue clears soonest (attempts assigned and not finished, over its current rate and slots),
waits for that endpoint's limiter, sends, and reports the answer to that limiter (on_ok,
on_throttled, on_other). The endpoint's name and the wait go back on the result or the error
(the log's ``endpoint`` and ``wait_s`` columns).

An auth or quota answer takes its endpoint out. When another live endpoint serves the model,
the error goes back marked ``rerouted``: the attempt is logged, and the job is sent again at
once, elsewhere, without using up an attempt. When none does, the run stops (the class's
STOP_RUN) only if no endpoint at all is left; otherwise that model's jobs get a final row of
the class (pending for resume) and the run goes on with the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from batchgen.errors import Action, AttemptError, ErrorClass
from batchgen.jobs.model import Job
from batchgen.limits import MAX_PAUSE_S, RateLimiter, Ticket
from batchgen.limits.pacing import Slots, loop_now
from batchgen.limits.stop import RunControl
from batchgen.provider.base import GenerateResult, Provider


class _TakenOutWhileWaiting(Exception):
    """The endpoint was taken out while the attempt waited for it: nothing was sent."""

    def __init__(self, wait_s: float) -> None:
        super().__init__("taken out while waiting")
        self.wait_s = wait_s


@dataclass(eq=False)
class Endpoint:
    name: str
    protocol: str
    provider: Provider
    limiter: RateLimiter
    models: frozenset[str]
    pending: int = 0  # attempts assigned here and not finished (waiting or in flight)
    down: AttemptError | None = None  # what took it out (auth, quota)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.down is None

    def load(self, now: float) -> float:
        """Seconds until this endpoint's queue clears, roughly: lower is better."""
        lim = self.limiter
        rpm = lim.requests.control.current if lim.requests is not None else math.inf
        per_s = rpm / 60.0 if math.isfinite(rpm) and rpm > 0 else math.inf
        by_rate = (self.pending + 1) / per_s if math.isfinite(per_s) else 0.0
        by_slots = (self.pending + 1) / max(1, lim.inflight.slots)
        return max(0.0, lim.paused_until - now) + by_rate + by_slots * 1e-3


class SharedGate:
    """The pool's gate (a :class:`batchgen.limits.Gate`) when a Router paces per endpoint:
    fixed slots (the workers), no rates, never a pause. It still counts 429s and progress
    for the pool's stall watchdog."""

    max_pause_s = MAX_PAUSE_S

    def __init__(self, concurrency: int, describe: Callable[[], str]) -> None:
        self._slots = Slots(max(1, concurrency))
        self._describe = describe
        self._out = 0
        self.throttled = 0
        self.throttled_since_progress = 0
        self.last_progress = loop_now()

    @property
    def concurrency_cap(self) -> int:
        return self._slots.limit

    async def admit(self, n: int = 1) -> Ticket:
        await self._slots.acquire()
        self._out += 1
        return Ticket(self._out, anyio.current_time(), n)

    def leave(self, ticket: Ticket) -> None:
        self._out = max(0, self._out - 1)
        self._slots.release()

    def on_ok(self, ticket: Ticket | None, headers: dict[str, str] | None) -> None:
        self.on_other()

    def on_throttled(
        self,
        ticket: Ticket | None,
        retry_after_s: float | None,
        headers: dict[str, str] | None = None,
        message: str = "",
        code: str = "",
    ) -> float:
        self.throttled += 1
        self.throttled_since_progress += 1
        return 0.0

    def on_other(self) -> None:
        self.last_progress = anyio.current_time()
        self.throttled_since_progress = 0

    def observe_headers(self, headers: dict[str, str] | None) -> None:
        return None

    def stalled_s(self) -> float:
        return anyio.current_time() - self.last_progress

    def describe(self) -> str:
        return self._describe()

    def learned(self) -> dict[str, Any]:
        return {}  # each endpoint's limiter learns (Router.learned)


class Router:
    """A Provider over several endpoints (see the module's doc)."""

    name = "router"

    def __init__(
        self,
        endpoints: list[Endpoint],
        control: RunControl | None = None,
        inflight: set[str] | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("a Router needs at least one endpoint")
        self.endpoints = endpoints
        self.control = control
        # the pool's in-flight set (the sent journal): the Router adds a job when its request
        # really leaves (after the endpoint's limiter), so a job still waiting at a crash is
        # not "possibly billed twice"; the pool discards it after the row, as for one endpoint
        self.inflight = inflight
        self.by_model: dict[str, list[Endpoint]] = {}
        for ep in endpoints:
            for model in sorted(ep.models):
                self.by_model.setdefault(model, []).append(ep)
        cap = sum(ep.limiter.concurrency_cap for ep in endpoints)
        self.gate = SharedGate(cap, self.describe)

    @property
    def adds_inflight(self) -> bool:
        return self.inflight is not None

    def describe(self) -> str:
        return " | ".join(
            f"{ep.name}: "
            + (ep.limiter.describe() if ep.down is None else f"out ({ep.down.error_class.value})")
            for ep in self.endpoints
        )

    def learned(self) -> dict[str, Any]:
        return {ep.name: ep.limiter.learned() for ep in self.endpoints}

    def taken_out(self) -> dict[str, AttemptError]:
        return {ep.name: ep.down for ep in self.endpoints if ep.down is not None}

    def pick(self, model: str | None) -> Endpoint | None:
        live = [ep for ep in self.by_model.get(str(model), ()) if ep.alive]
        if not live:
            return None
        now = anyio.current_time()
        return min(live, key=lambda ep: ep.load(now))

    def _none_left(self, job: Job) -> AttemptError:
        serving = self.by_model.get(str(job.model), [])
        if not serving:
            msg = f"no endpoint of the providers file serves model {job.model!r}"
            return AttemptError(ErrorClass.BAD_REQUEST, msg, code="no_endpoint")
        cause = serving[-1].down
        assert cause is not None
        names = ", ".join(ep.name for ep in serving)
        msg = f"every endpoint serving {job.model!r} ({names}) was taken out: {cause.message}"
        error = AttemptError(cause.error_class, msg, code=cause.code, endpoint=serving[-1].name)
        if any(ep.alive for ep in self.endpoints):
            # other models go on: this job stays pending (a final row of its class), no stop
            error.action_override = Action.PENDING
        return error

    async def generate(self, job: Job, *, timeout: float) -> GenerateResult:
        waited = 0.0
        while True:
            ep = self.pick(job.model)
            if ep is None:
                error = self._none_left(job)
                error.wait_s = waited
                raise error
            try:
                return await self._send(ep, job, timeout, waited)
            except _TakenOutWhileWaiting as out:
                # nothing was sent: no row, no attempt used; the next live endpoint (if any)
                waited = out.wait_s

    async def _send(self, ep: Endpoint, job: Job, timeout: float, waited: float) -> GenerateResult:
        ep.pending += 1
        start = anyio.current_time()
        ticket: Ticket | None = None
        try:
            if self.control is not None:
                with self.control.interruptible():
                    ticket = await ep.limiter.admit(job.n)
            else:
                ticket = await ep.limiter.admit(job.n)
            if ticket is None or (self.control is not None and self.control.stopping):
                raise AttemptError(ErrorClass.CANCELLED, "the run stopped before sending")
            wait = waited + anyio.current_time() - start
            if ep.down is not None:  # taken out while this attempt waited for it: not sent
                raise _TakenOutWhileWaiting(wait)
            if self.inflight is not None:
                self.inflight.add(job.id)
            try:
                result = await ep.provider.generate(job, timeout=timeout)
            except AttemptError as exc:
                exc.endpoint, exc.wait_s = ep.name, wait
                self._answered(ep, ticket, exc)
                if (
                    exc.error_class.action is Action.STOP_RUN
                    and exc.error_class is not ErrorClass.DISK
                ):
                    if ep.down is None:
                        ep.down = exc
                    raise self._rerouted_or_final(job, ep, exc, wait) from None
                raise
            ep.limiter.on_ok(ticket, result.ratelimit)
            ep.counts["ok"] = ep.counts.get("ok", 0) + 1
            return GenerateResult(
                result.images,
                result.usage,
                result.request_id,
                result.http_status,
                result.ratelimit,
                result.note,
                endpoint=ep.name,
                wait_s=wait,
            )
        finally:
            ep.pending -= 1
            if ticket is not None:
                ep.limiter.leave(ticket)

    def _answered(self, ep: Endpoint, ticket: Ticket | None, exc: AttemptError) -> None:
        if exc.error_class is ErrorClass.RATE_LIMIT:
            ep.limiter.on_throttled(
                ticket, exc.retry_after_s, exc.ratelimit, exc.message, exc.code or ""
            )
        else:
            ep.limiter.observe_headers(exc.ratelimit)
            ep.limiter.on_other()

    def _rerouted_or_final(
        self, job: Job, ep: Endpoint, exc: AttemptError, wait: float
    ) -> AttemptError:
        """An auth/quota answer from ``ep`` (now out): send the job elsewhere when another
        live endpoint serves its model; else the job's row is final (pending) and the run
        stops only when no endpoint at all is left."""
        if self.pick(job.model) is not None:
            note = f"[endpoint {ep.name} taken out; job sent to another]"
            error = AttemptError(
                exc.error_class,
                f"{exc.message} {note}",
                http_status=exc.http_status,
                code=exc.code,
                request_id=exc.request_id,
                endpoint=ep.name,
                rerouted=True,
            )
        else:
            error = self._none_left(job)
            error.http_status, error.request_id = exc.http_status, exc.request_id
            error.endpoint = ep.name
        error.wait_s = wait
        return error
