"""The cluster's one limit per endpoint: the rate every shard's sends are scheduled under.

A named Ray actor (``LimitActor``) holds a ``SharedLimit`` and hands out *send times* in small
chunks: a shard asks for up to ``want`` permits and gets the offsets (seconds from now) at which
each may leave, spaced at the cluster's rate. Successive grants continue one schedule, so the
shards' sends interleave at the rate in force and no chunk is a burst; the actor is called once
per chunk (about ``horizon_s`` of the cluster's sends), not once per request.

The rate is the autopilot's own (batchgen.limits.autopilot.RateControl, a requests/min and an
images/min one), fed with what every shard saw, so the cluster adapts as one local run does:

    shards' reports  → RateControl      (what a local run's gate does with the same answer)
    requests sent      sent(now, n)       each rate's measure of what went out
    a success          on_answer(latency) slow start clocked by answers (+1 request a latency)
    a stated limit     announce(limit)    x-ratelimit-limit-*, a 429 text that states it (the
                                          source it is labelled with: "headers", "429 text")
    a 429              on_loss(now)       the cut (slow start's ½, then the cubic-like cycle),
                                          for the kind it was for (named, or images with n > 1)
    every call         tick(now)          slow start ×2 a step, the approach, the probe
    Retry-After        the schedule's next free time moves past it (whole seconds less one, as
                       batchgen.limits.refusal does: "1" may mean 50 ms)

The one difference from a local run is the margin: the shards' clocks and the spread of their
sends over the network jitter the spacing, so a stated limit is aimed at with ``MARGIN``, not
the autopilot's usual headroom.

Pure and clock-free (every method takes ``now``), so its tests need neither Ray nor sleeps.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from dataclasses import dataclass, field

from batchgen.limits.autopilot import IMAGES, REQUESTS, AutopilotConfig, RateControl

# the share of an announced limit the cluster sends at: the shards' clocks and the network
# jitter the spacing a little, and a server's bucket holds about a second of the rate
MARGIN = 0.95
CONFIG = dataclasses.replace(AutopilotConfig(), headroom=MARGIN)
HORIZON_S = 0.5  # a grant covers about this much of the cluster's sends
# the schedule is handed out at most a grant per shard (and one more) ahead: each shard holds
# about one grant while the next is fetched, and a cut rate is in force within that time
MIN_PER_S = 1 / 60  # one request a minute: a rate the schedule never passes below


@dataclass(frozen=True, slots=True)
class Report:
    """What one shard saw since its last call."""

    ok: int = 0
    throttled: int = 0
    retry_after_s: float = 0.0  # the longest wait a 429 asked for
    announced_rpm: float | None = None  # the last requests/min limit a provider stated
    sent: int = 0  # permits used (requests sent) since the last call
    ok_latency_s: float = 0.0  # the successes' latencies added up (their mean clocks slow start)
    fastest_s: float | None = None  # the quickest answer, a 429's round trip included
    images: int = 0  # images the requests sent asked for (n added up)
    announced_ipm: float | None = None  # the last images/min limit a provider stated
    throttled_images: int = 0  # of ``throttled``: 429s for images/min
    # the kinds whose last stated limit was in a 429's text, not in x-ratelimit headers
    announced_in_text: frozenset[str] = frozenset()
    jobs_done: int = 0  # the shard's jobs ended so far (absolute): the driver's progress line
    jobs_failed: int = 0  # ... of them failed


@dataclass(frozen=True, slots=True)
class Grant:
    offsets: tuple[float, ...]  # seconds from the call's answer at which each permit may go
    wait_s: float  # nothing granted: ask again after this long
    per_minute: float  # the cluster's request rate in force (for the progress line)


@dataclass(slots=True)
class SharedLimit:
    """The schedule and the rate control of one endpoint, for the whole cluster."""

    now: float
    rpm: float | None = None  # --rpm: a ceiling the rate never passes
    adapt: bool = True  # --no-adapt: the rates are the flags, fixed
    ipm: float | None = None  # --ipm
    config: AutopilotConfig = CONFIG
    requests: RateControl = field(init=False)
    images: RateControl = field(init=False)
    next_free: float = 0.0  # the schedule: when the next permit may go
    fastest: float = math.inf
    calls: int = 0
    granted: int = 0
    throttled: int = 0
    sent_requests: int = 0
    sent_images: int = 0
    shards: set[str] = field(default_factory=set)
    jobs: dict[str, tuple[int, int]] = field(default_factory=dict)  # shard -> (done, failed)
    # the send times handed out and not yet due: each is the rates' "sent" when its time
    # comes (a shard sends at the time it was given), so what the controls measure is what
    # the server saw then, not the shards' reports a chunk later. A time a 429 voided counts
    # too: a 429 episode's measure runs a little high, and a cut takes the lower of it and
    # the rate in force
    _due: deque[float] = field(default_factory=deque)
    _images_due: float = 0.0  # images of the sends fed so far, not yet whole

    def __post_init__(self) -> None:
        self.next_free = self.now
        self.requests = RateControl(REQUESTS, self.rpm, self.config, self.now)
        self.images = RateControl(IMAGES, self.ipm, self.config, self.now)
        if not self.ipm:
            self.images.current = math.inf  # dormant until the provider limits images
        if not self.adapt and not self.rpm:
            self.requests.current = math.inf

    @property
    def rate(self) -> float:
        """Permits (requests) per second in force: the request rate, and the image rate at the
        mean n the shards asked for."""
        per_s = self.requests.current / 60.0
        mean_n = self.sent_images / self.sent_requests if self.sent_requests else 1.0
        if math.isfinite(self.images.current):
            per_s = min(per_s, self.images.current / 60.0 / max(mean_n, 1.0))
        return max(MIN_PER_S, per_s)

    def report(self, now: float, seen: Report) -> None:
        self.throttled += seen.throttled
        self.sent_requests += seen.sent
        self.sent_images += seen.images or seen.sent
        if seen.fastest_s is not None and seen.fastest_s < self.fastest:
            self.fastest = seen.fastest_s
            # slow start steps once per two of the quickest answers (a second at most), as
            # the local gate's does
            step = min(self.config.interval_s, max(0.05, 2 * seen.fastest_s))
            self.requests.step_s = self.images.step_s = step
        if self.adapt:
            self._learn(now, seen)
        self._pause(now, seen)

    def _feed_sends(self, now: float) -> None:
        """The send times now past, into the rates' measure of what went out."""
        due = self._due
        mean_n = self.sent_images / self.sent_requests if self.sent_requests else 1.0
        while due and due[0] <= now:
            at = due.popleft()
            self.requests.sent(at, 1)
            self._images_due += mean_n
            if self._images_due >= 1.0:
                whole = int(self._images_due)
                self._images_due -= whole
                self.images.sent(at, whole)

    def _learn(self, now: float, seen: Report) -> None:
        """What a local gate does with the same answers (batchgen.limits.gate, refusal)."""
        self._feed_sends(now)
        moved = set()
        for control, limit in (
            (self.requests, seen.announced_rpm),
            (self.images, seen.announced_ipm),
        ):
            if limit is not None and limit > 0 and control.announced != limit:
                # labelled by where it was stated, as a local gate does (limits.announced)
                where = "429 text" if control.kind in seen.announced_in_text else "headers"
                control.announce(limit, now, where)
                moved.add(control.kind)
        if seen.ok:
            latency = seen.ok_latency_s / seen.ok
            for control in (self.requests, self.images):
                if math.isfinite(control.current) and latency > 0:
                    for _ in range(min(seen.ok, 256)):
                        control.on_answer(latency)
        # a 429 stating a new limit of its kind is explained by it: no cut on top
        if seen.throttled - seen.throttled_images > 0 and REQUESTS not in moved:
            self.requests.on_loss(now)
        if seen.throttled_images > 0 and IMAGES not in moved:
            self.images.on_loss(now)
        self._tick(now)

    def _tick(self, now: float) -> None:
        self._feed_sends(now)
        for control in (self.requests, self.images):
            control.tick(now)

    def _pause(self, now: float, seen: Report) -> None:
        if not seen.throttled:
            return
        wait = seen.retry_after_s
        if self.adapt and wait >= 1.0 and wait == int(wait):
            wait -= 1.0  # whole seconds are rounded up: hold only what is surely left
        # the provider's bucket is empty: the next permit goes one spacing from now at least
        self.next_free = max(self.next_free, now + max(wait, 1.0 / self.rate))

    def grant_after(self, now: float, seen: Report, want: int, shard: str = "") -> Grant:
        """A shard's call: what it saw since its last one, then its next send times."""
        self.report(now, seen)
        self.jobs[shard] = (seen.jobs_done, seen.jobs_failed)
        return self.grant(now, want, shard)

    def grant(self, now: float, want: int, shard: str = "") -> Grant:
        """Up to ``want`` send times, continuing the cluster's schedule."""
        self.calls += 1
        if shard not in self.shards:
            self.shards.add(shard)
            self._episode()
        if self.adapt:
            self._tick(now)
        start = max(now, self.next_free)
        ahead = HORIZON_S * (len(self.shards) + 1)
        if start - now > ahead:
            return Grant((), start - now - ahead, self.per_minute)
        rate = self.rate
        if not math.isfinite(rate):  # --no-adapt and no flag: nothing to pace
            self.granted += want
            return Grant((0.0,) * want, 0.0, self.per_minute)
        count = max(1, min(want, math.floor(rate * HORIZON_S)))
        spacing = 1.0 / rate
        offsets = tuple(start - now + i * spacing for i in range(count))
        self.next_free = start + count * spacing
        self.granted += count
        if self.adapt:
            self._due.extend(start + i * spacing for i in range(count))
        return Grant(offsets, 0.0, self.per_minute)

    def _episode(self) -> None:
        """429s of one episode: a cut is in force only for the sends scheduled after it, and
        the schedule runs up to a grant per shard (and one more) ahead of the answers, so the
        429s that come that long after a cut are of the rate before it (a local gate's cut is
        in force for its next request: a second of cooldown is the autopilot's default)."""
        ahead = HORIZON_S * (len(self.shards) + 1)
        cfg = dataclasses.replace(self.config, cooldown_s=max(self.config.cooldown_s, ahead))
        self.requests.cfg = self.images.cfg = cfg

    @property
    def per_minute(self) -> float:
        return self.rate * 60.0

    def progress(self) -> dict[str, float | int]:
        """The cluster's progress line: jobs ended and failed over every shard (as of each
        shard's last call), requests sent, 429s, the rate in force."""
        return {
            "done": sum(done for done, _ in self.jobs.values()),
            "failed": sum(failed for _, failed in self.jobs.values()),
            "sent": self.sent_requests,
            "throttled": self.throttled,
            "per_minute": self.per_minute,
        }

    def figures(self) -> dict[str, float | int | None]:
        """What the limit did, for run.json and the bench: calls per permit among them."""
        return {
            "per_minute": round(self.per_minute, 3),
            "announced_per_minute": self.requests.announced,
            "learned_per_minute": self.requests.learned(),
            "learned_images_per_minute": self.images.learned(),
            "calls": self.calls,
            "permits": self.granted,
            "calls_per_permit": round(self.calls / self.granted, 4) if self.granted else None,
            "throttled": self.throttled,
            "cuts": self.requests.losses + self.images.losses,
            "shards": len(self.shards),
        }


class LimitActor:
    """The Ray actor around a SharedLimit (made remote by ``cluster.driver``): one per endpoint
    for the cluster, named after the run. A plain (threaded) actor runs its calls one at a
    time, so the schedule needs no lock."""

    def __init__(self, rpm: float | None, adapt: bool, ipm: float | None = None) -> None:

        self._clock = time.monotonic
        self.limit = SharedLimit(self._clock(), rpm=rpm, adapt=adapt, ipm=ipm)

    def grant(self, shard: str, want: int, seen: Report) -> Grant:
        return self.limit.grant_after(self._clock(), seen, want, shard)

    def figures(self) -> dict[str, float | int | None]:
        return self.limit.figures()

    def progress(self) -> dict[str, float | int]:
        return self.limit.progress()
