"""The gate's pacing parts: a token bucket whose rate changes in place with the workers that
wait for it, a rate control paired with its bucket, and in-flight slots whose number changes
while they are held. (batchgen.limits.gate puts them together; the controls that move them are
in autopilot and inflight; the bucket's arithmetic, shared with the simulator, is in bucket.)"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import anyio

from batchgen.clock import loop_time
from batchgen.limits.autopilot import RateControl
from batchgen.limits.bucket import TokenBucket

BURST_S = 0.2  # our buckets' capacity, in seconds of the current rate

# The time slack per token. A provider may enforce a per-minute limit over a shorter window than
# the minute it states (the simulator's bucket holds one second of the limit; we have not seen a
# provider document its window, so one second is an assumption). A bucket of a window's worth
# absorbs a request that arrives early by up to the window less one spacing; under one request a
# window (5 images/min: one every 12 s) it holds one token and absorbs nothing, so a request
# sent exactly one spacing after another but reaching the server sooner than it did is refused.
# Requests do not reach it a fixed time after they leave: the run's first is slower (a new
# connection, first-use costs: 26 ms on loopback), and any may be late (71 ms on a loaded
# machine), so the request after a slow one is refused. Such a rate keeps SLACK_S between its
# requests beyond the spacing; where the window absorbs part of that, only the rest; never over
# SLACK_SHARE of the spacing. At a request a window or more the slack is nothing: fast rates
# lose no throughput.
SERVER_WINDOW_S = 1.0
SLACK_S = 0.1
SLACK_SHARE = 0.05


def slack_s(per_minute: float) -> float:
    """Seconds added to a rate's spacing for the way to the server (see SLACK_S)."""
    if not math.isfinite(per_minute) or per_minute <= 0:
        return 0.0
    spacing = 60.0 / per_minute
    absorbed = max(0.0, SERVER_WINDOW_S - spacing)  # what the provider's window takes up
    return max(0.0, min(SLACK_S - absorbed, SLACK_SHARE * spacing))


def slackened(per_minute: float, limit: float | None = None) -> float:
    """The rate a bucket paces at to keep ``slack_s`` between requests beyond the spacing of
    ``limit`` (the provider's, when known; else ``per_minute`` itself), per minute. A rate
    already that far under the limit (a headroom, a cut after a 429) is kept as it is."""
    if limit is None or not math.isfinite(limit) or limit < per_minute:
        limit = per_minute
    slack = slack_s(limit)
    if slack == 0.0:
        return per_minute
    return 60.0 / max(60.0 / per_minute, 60.0 / limit + slack)


class Paced:
    """A rate control and the bucket that paces at its current rate (none while it is
    infinite: an images/min rate nobody has limited yet).

    Tokens are taken one at a time, so the capacity stays a fraction of a second's worth
    whatever n is; a request of n images holds a lock while it collects its n, so the next
    such request starts after it (tokens handed round-robin would delay all of them). The
    rate moves in place, keeping how full the bucket is: a new bucket at each move would let
    its whole capacity out each time. A worker waiting for a token wakes when it is due or
    when the rate moves. ``slack``: the bucket keeps ``slack_s`` between tokens beyond the
    rate's spacing (the autopilot's gate; --no-adapt paces at its flags exactly)."""

    def __init__(self, control: RateControl, now: float, *, slack: bool = False) -> None:
        self.control = control
        self._applied = control.current
        self._slack = slack
        self.bucket: TokenBucket | None = None  # None while the rate is infinite
        if math.isfinite(control.current):
            self.bucket = TokenBucket(self._paced(control.current), now, BURST_S)
        self._order = anyio.Lock()  # held by the worker at the head of the queue
        self._moved = anyio.Event()  # set (and replaced) when the rate moves
        self._waiting = 0  # workers waiting for a single token
        self._left = 0  # waiters that have left (with a token or cancelled), ever

    def sync(self) -> None:
        value = self.control.current
        if value == self._applied or math.isclose(value, self._applied, rel_tol=1e-4):
            return
        self._applied = value
        now = loop_time()
        if not math.isfinite(value):
            self.bucket = None
        elif self.bucket is None:
            # a limit just found (a 429 said so): it was just used up, so the bucket starts
            # empty, or what waited for it would leave together with the refused retry
            self.bucket = TokenBucket(self._paced(value), now, BURST_S, full=False)
        else:
            self.bucket.set_rate(self._paced(value), now, keep="used")
        self._wake()

    def _paced(self, per_minute: float) -> float:
        if not self._slack:
            return per_minute
        # the slack is counted from the limit's spacing: the headroom under a stated limit is
        # part of it, not paid twice
        control = self.control
        known = [x for x in (control.announced, control.cap) if x is not None]
        return slackened(per_minute, min(known) if known else None)

    def drain(self) -> None:
        """Take every token out: the next one comes one spacing from now."""
        if self.bucket is not None:
            self.bucket.empty(loop_time())
            self._wake()

    def _wake(self) -> None:
        self._moved.set()
        self._moved = anyio.Event()

    async def acquire(self, amount: int) -> None:
        if self.bucket is not None:
            if amount == 1:
                # no queue for single tokens: whoever wakes when one is due takes it. A FIFO
                # lock handed the turn on once per token, one event-loop pass each: on a
                # loaded loop that pass, not the rate, set the pace (main's bench 0.93, with
                # the lock 0.84-0.91 on rpm-headers-5s at load 22)
                await self._take_one()
            else:
                async with self._order:
                    for _ in range(amount):
                        await self._take_one()
        self.control.sent(loop_time(), amount)

    @property
    def limited(self) -> bool:
        """A bucket paces this rate (it is finite)."""
        return self.bucket is not None

    def try_take(self, now: float) -> bool:
        """``ready`` and ``take_now(1)`` in one: one token taken and counted as sent (True),
        or nothing taken (False)."""
        bucket = self.bucket
        if bucket is not None and not bucket.try_take(1, now):
            return False
        self.control.sent(now, 1)
        return True

    def ready(self, now: float) -> bool:
        """One token can be taken now, without waiting."""
        bucket = self.bucket
        if bucket is None:
            return True
        bucket.refill(now)
        return bucket.wait_for(1) <= 0

    def take_now(self, amount: int, now: float) -> None:
        """Take what ``ready`` found there: one token, or any number while unlimited."""
        if self.bucket is not None:
            self.bucket.take(amount)
        self.control.sent(now, amount)

    async def _take_one(self) -> None:
        # Each waiter sleeps until the token of its place in the queue is due, not the first
        # one: with all of them woken for each token, N waiters cost N - 1 wasted loop passes a
        # token (250,000 wake-ups for 1,240 jobs in a no-headers run). The place is where it
        # came in, less the waiters that have left since (taken or cancelled); it can only be
        # under the true one (someone behind left first), which wakes it early, never late.
        self._waiting += 1
        place, left_before = self._waiting, self._left
        try:
            while True:
                bucket = self.bucket
                if bucket is None:  # the rate became unlimited while this worker waited
                    return
                bucket.refill(loop_time())
                if bucket.wait_for(1) <= 0:
                    bucket.take(1)
                    return
                ahead = max(1, min(place - (self._left - left_before), self._waiting))
                wait = (ahead - bucket.tokens) / bucket.per_second
                with anyio.move_on_after(wait):
                    await self._moved.wait()
        finally:
            self._waiting -= 1
            self._left += 1


@dataclass(slots=True)
class Ticket:
    """One request let out by the gate (its slot, when it left, what it asked for)."""

    inflight: int  # requests out when this one was sent, itself included
    sent_at: float
    n: int = 1  # images asked for


class Slots:
    """A semaphore whose size changes while it is held (the adaptive in-flight limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.waiters: deque[anyio.Event] = deque()  # workers queued for a slot, first first

    @property
    def free(self) -> bool:
        """A slot is free now and nobody queues for one."""
        return self.used < self.limit and not self.waiters

    async def acquire(self) -> int:
        """Take a slot; returns how many are out, this one included."""
        if self.used < self.limit and not self.waiters:
            self.used += 1
            return self.used
        event = anyio.Event()
        self.waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release()  # handed a slot while being cancelled: pass it on
            else:
                self.waiters.remove(event)
            raise
        return self.used

    def release(self) -> None:
        self.used -= 1
        if self.waiters:
            self._wake()

    def set_limit(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._wake()

    def _wake(self) -> None:
        while self.waiters and self.used < self.limit:
            self.used += 1
            self.waiters.popleft().set()


def loop_now() -> float:
    """The event loop's time, or 0.0 outside a loop (a gate built before the run starts)."""
    try:
        return loop_time()
    except RuntimeError:  # sniffio's AsyncLibraryNotFoundError: no event loop here
        return 0.0
