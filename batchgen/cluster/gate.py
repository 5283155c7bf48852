"""A shard's gate: the pool's RateLimiter, its sends scheduled by the cluster's limit actor.

The local part keeps what is per process (the in-flight slots, the stall watchdog's counts, a
429's pause for this shard's workers); the rate is the cluster's: after its slot a request waits
for a send time from the ``Permits`` this shard holds, fetched from the actor a chunk at a time.
What the answers say (successes, 429s, a stated limit, Retry-After) rides on the next fetch.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio

from batchgen.cluster.limit import Grant, Report
from batchgen.limits import RateLimiter, Ticket
from batchgen.limits.autopilot import IMAGES, REQUESTS
from batchgen.limits.hints import read_hint
from batchgen.runner.control import PoolTally

WANT = 64  # permits asked for at once (the actor grants at most ~half a second of the rate)
# the next chunk is asked for this long before the last one runs out (a call to the actor
# takes milliseconds): a shard holds about one chunk, so the shards' chunks interleave
LEAD_S = 0.1


@dataclass(slots=True)
class Seen:
    """What this shard's answers said since its last call (the actor's ``Report``)."""

    ok: int = 0
    throttled: int = 0
    retry_after_s: float = 0.0
    announced_rpm: float | None = None
    sent: int = 0
    ok_latency_s: float = 0.0
    fastest_s: float | None = None
    images: int = 0
    announced_ipm: float | None = None
    throttled_images: int = 0
    announced_in_text: frozenset[str] = frozenset()  # of the two above, stated in a 429's text
    max_n: int = 1  # the most images a request of this shard asked for (kept across calls)
    jobs_done: int = 0  # the shard's jobs ended so far, and failed (the pool's tally)
    jobs_failed: int = 0

    def take(self) -> Report:
        report = Report(
            ok=self.ok,
            throttled=self.throttled,
            retry_after_s=self.retry_after_s,
            announced_rpm=self.announced_rpm,
            sent=self.sent,
            ok_latency_s=self.ok_latency_s,
            fastest_s=self.fastest_s,
            images=self.images,
            announced_ipm=self.announced_ipm,
            throttled_images=self.throttled_images,
            announced_in_text=self.announced_in_text,
            jobs_done=self.jobs_done,
            jobs_failed=self.jobs_failed,
        )
        self.ok = self.throttled = self.sent = self.images = self.throttled_images = 0
        self.retry_after_s = self.ok_latency_s = 0.0
        self.fastest_s = None
        return report

    def tally(self, tally: PoolTally) -> None:
        """The pool's progress (the shard's observer gets it): rides on the next call."""
        self.jobs_done = tally.ok_jobs + tally.failed_jobs
        self.jobs_failed = tally.failed_jobs

    def answered(self, latency: float) -> None:
        if self.fastest_s is None or latency < self.fastest_s:
            self.fastest_s = latency

    def hint(self, headers: dict[str, str] | None, message: str = "", code: str = "") -> str:
        """Read the limits an answer states; returns the kind a 429 was for (the one it names
        or whose remaining is 0; else images when requests ask for several, as the local
        gate's guess is)."""
        hint = read_hint(headers, message, code)
        limits = hint.limits
        if (limit := limits.get(REQUESTS)) is not None:
            self.announced_rpm = limit
        if (limit := limits.get(IMAGES)) is not None:
            self.announced_ipm = limit
        if hint.in_text or self.announced_in_text:
            # where each kind's last stated limit was: the actor labels it so
            kept = (kind for kind in self.announced_in_text if kind not in limits)
            self.announced_in_text = hint.in_text.union(kept)
        if hint.exhausted is not None:
            return hint.exhausted
        return IMAGES if self.max_n > 1 else REQUESTS


class Permits:
    """Send times granted by the limit actor, in the order they were given out."""

    def __init__(self, actor: Any, shard: str, want: int = WANT, seen: Seen | None = None) -> None:
        self.actor = actor  # a Ray actor handle of cluster.limit.LimitActor
        self.shard = shard
        self.want = want
        self.seen = seen or Seen()
        self.calls = 0
        self.permits = 0
        self.per_minute = 0.0
        self._times: deque[float] = deque()  # loop times at which each held permit may go
        self._until = 0.0  # when the last chunk's time runs out
        self._fetching = anyio.Lock()
        # set by a 429: a wait for the next call ends at once, so the actor hears of it now
        self._urgent = anyio.Event()
        # set (and replaced) by a 429: the times the waiting workers took are void
        self._dropped = anyio.Event()

    async def take(self, n: int = 1) -> None:
        """Wait for this shard's next send time (for a request of ``n`` images)."""
        while True:
            if self._times:
                delay = self._times.popleft() - anyio.current_time()
                if delay > 0:
                    dropped = self._dropped
                    with anyio.move_on_after(delay):
                        await dropped.wait()
                    if dropped.is_set():
                        # a 429 came while this worker waited: its time was given out at the
                        # rate before the cut (the workers waiting hold most of a chunk)
                        continue
                self.seen.sent += 1
                self.seen.images += n
                self.seen.max_n = max(self.seen.max_n, n)
                return
            async with self._fetching:
                if self._times:
                    continue
                # every time held went to a worker already: ask for more when they are near
                # their end, not at once (a chunk held early is a chunk another shard waits for)
                await self._until_urgent(self._until - LEAD_S - anyio.current_time())
                await self._fetch()

    async def _until_urgent(self, seconds: float) -> None:
        if seconds > 0 and not self._urgent.is_set():
            with anyio.move_on_after(seconds):
                await self._urgent.wait()
        if self._urgent.is_set():
            self._urgent = anyio.Event()

    async def _fetch(self) -> None:
        grant: Grant = await self.actor.grant.remote(self.shard, self.want, self.seen.take())
        now = anyio.current_time()
        self.calls += 1
        self.per_minute = grant.per_minute
        if not grant.offsets:
            await self._until_urgent(grant.wait_s)
            return
        self.permits += len(grant.offsets)
        self._times.extend(now + offset for offset in grant.offsets)
        spacing = 60.0 / grant.per_minute if grant.per_minute > 0 else 0.0
        self._until = self._times[-1] + spacing

    def drop(self) -> None:
        """A 429: the times held were given out at the old rate; the actor gives new ones."""
        self._times.clear()
        self._until = 0.0
        self._urgent.set()
        self._dropped.set()
        self._dropped = anyio.Event()


class ClusterGate(RateLimiter):
    """RateLimiter with fixed local slots and the cluster's rate (``--no-adapt`` locally: the
    actor adapts, once for every shard)."""

    def __init__(self, permits: Permits, *, concurrency: int, max_pause_s: float) -> None:
        super().__init__(None, None, concurrency=concurrency, adapt=False, max_pause_s=max_pause_s)
        self.permits = permits

    async def admit(self, n: int = 1) -> Ticket:
        ticket = await super().admit(n)  # the slot first: a permit is never held while waiting
        try:
            await self.permits.take(n)
        except BaseException:
            self.leave(ticket)
            raise
        ticket.sent_at = anyio.current_time()
        return ticket

    async def acquire(self, n: int = 1) -> float:
        start = anyio.current_time()
        await super().acquire(n)
        await self.permits.take(n)
        return anyio.current_time() - start

    def on_ok(self, ticket: Ticket | None, headers: dict[str, str] | None) -> None:
        super().on_ok(ticket, headers)
        seen = self.permits.seen
        seen.ok += 1
        seen.hint(headers)
        if ticket is not None:
            latency = anyio.current_time() - ticket.sent_at
            seen.ok_latency_s += latency
            seen.answered(latency)

    def on_throttled(
        self,
        ticket: Ticket | None,
        retry_after_s: float | None,
        headers: dict[str, str] | None = None,
        message: str = "",
        code: str = "",
    ) -> float:
        seen = self.permits.seen
        seen.throttled += 1
        seen.retry_after_s = max(seen.retry_after_s, retry_after_s or 0.0)
        if seen.hint(headers, message, code) == IMAGES:
            seen.throttled_images += 1
        if ticket is not None:
            seen.answered(anyio.current_time() - ticket.sent_at)
        self.permits.drop()
        # this shard's workers hold for the Retry-After as an adaptive local gate does: whole
        # seconds less one ("1" may mean 50 ms; the actor's schedule spaces what follows)
        wait = retry_after_s
        if wait is not None and wait >= 1.0 and wait == int(wait):
            wait -= 1.0
        return super().on_throttled(ticket, wait, headers, message, code)

    def describe(self) -> str:
        return f"cluster {self.permits.per_minute:,.0f} req/min, {super().describe()}"

    def learned(self) -> dict[str, Any]:
        found = super().learned()
        found.update(
            adaptive=True,
            rpm_source="cluster",
            final_rpm=round(self.permits.per_minute, 1),
            cluster_calls=self.permits.calls,
            cluster_permits=self.permits.permits,
        )
        return found
