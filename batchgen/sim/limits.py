"""The simulator's own rate limits: smooth token buckets, like a real service enforces them
(the same ``TokenBucket`` the client's gate paces with, batchgen.limits.bucket).

A bucket holds ``burst_s`` seconds' worth of tokens (1 s unless told) and refills continuously,
so a client that bursts a whole minute's quota at once is refused (429) instead of being served
— the mistake a per-minute window would hide. Time comes from an injected ``monotonic`` so
tests are exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from batchgen.limits.bucket import TokenBucket

NO_LIMIT_RPM = 1_000_000  # what the headers say when no limit is set


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_s: float  # when the refused request could pass (0 when allowed)
    limited_by: str | None  # "requests" / "images"


Schedule = tuple[tuple[float, float], ...]


class ServerLimiter:
    """Requests/min and images/min buckets, each with a schedule that changes it over time."""

    def __init__(
        self,
        monotonic: Callable[[], float],
        rpm: float | None = None,
        ipm: float | None = None,
        schedule: Schedule = (),
        *,
        ipm_schedule: Schedule = (),
        burst_s: float = 1.0,
    ) -> None:
        self._monotonic = monotonic
        self._start = monotonic()
        now = self._start
        self._schedule = tuple(sorted(schedule))
        self._ipm_schedule = tuple(sorted(ipm_schedule))
        self.burst_s = burst_s
        self.requests: TokenBucket | None = TokenBucket(rpm, now, burst_s) if rpm else None
        self.images: TokenBucket | None = TokenBucket(ipm, now, burst_s) if ipm else None
        self._base_rpm = rpm
        self._base_ipm = ipm
        self._apply_schedule(now)

    def configure(
        self,
        rpm: float | None,
        ipm: float | None,
        schedule: Schedule,
        *,
        ipm_schedule: Schedule = (),
        burst_s: float = 1.0,
    ) -> None:
        """Apply new limits live; a changed schedule (either) restarts the schedule clock."""
        now = self._monotonic()
        schedules = (tuple(sorted(schedule)), tuple(sorted(ipm_schedule)))
        if schedules != (self._schedule, self._ipm_schedule):
            self._schedule, self._ipm_schedule = schedules
            self._start = now
        self._base_rpm = rpm
        self._base_ipm = ipm
        self.burst_s = burst_s
        self.images = _retarget(self.images, ipm, now, burst_s)
        self.requests = _retarget(self.requests, rpm, now, burst_s)
        self._apply_schedule(now)

    def restart(self) -> None:
        """Full buckets and the schedules back at t=0 (``/_sim/reset``)."""
        now = self._monotonic()
        self._start = now
        self._apply_schedule(now)
        for bucket in (self.requests, self.images):
            if bucket is not None:
                bucket.restart(now)

    @property
    def started_at(self) -> float:
        """The monotonic time the schedules count from (start, reset, a changed schedule)."""
        return self._start

    def current_rpm(self) -> float | None:
        return self.requests.per_minute if self.requests else None

    def current_ipm(self) -> float | None:
        return self.images.per_minute if self.images else None

    def _apply_schedule(self, now: float) -> None:
        elapsed = now - self._start
        rpm = _scheduled(self._base_rpm, self._schedule, elapsed)
        ipm = _scheduled(self._base_ipm, self._ipm_schedule, elapsed)
        self.requests = _retarget(self.requests, rpm, now, self.burst_s)
        self.images = _retarget(self.images, ipm, now, self.burst_s)

    def check(self, n_images: int) -> Verdict:
        """Admit one request of ``n_images`` (taking tokens) or say how long to wait."""
        now = self._monotonic()
        if self._schedule or self._ipm_schedule:
            self._apply_schedule(now)
        waits: list[tuple[float, str]] = []
        for bucket, cost, name in (
            (self.requests, 1, "requests"),
            (self.images, n_images, "images"),
        ):
            if bucket is not None:
                bucket.refill(now)
                wait = bucket.wait_for(cost)
                if wait > 0:
                    waits.append((wait, name))
        if waits:
            wait, name = max(waits)
            return Verdict(False, wait, name)
        if self.requests is not None:
            self.requests.take(1)
        if self.images is not None:
            self.images.take(n_images)
        return Verdict(True, 0.0, None)

    def headers(self) -> dict[str, str]:
        """``x-ratelimit-*`` headers describing the buckets right now (schedules applied, so an
        answer that never reached :meth:`check`, a 400 say, announces the limit in force)."""
        now = self._monotonic()
        if self._schedule or self._ipm_schedule:
            self._apply_schedule(now)
        out: dict[str, str] = {}
        if self.requests is None:
            out["x-ratelimit-limit-requests"] = str(NO_LIMIT_RPM)
            out["x-ratelimit-remaining-requests"] = str(NO_LIMIT_RPM)
            out["x-ratelimit-reset-requests"] = "0s"
        else:
            self.requests.refill(now)
            _describe(out, "requests", self.requests)
        if self.images is not None:
            self.images.refill(now)
            _describe(out, "images", self.images)
        return out


def _scheduled(base: float | None, schedule: Schedule, elapsed: float) -> float | None:
    limit = base
    for t, scheduled in schedule:
        if elapsed >= t:
            limit = scheduled
    return limit


def _retarget(
    bucket: TokenBucket | None, per_minute: float | None, now: float, burst_s: float
) -> TokenBucket | None:
    if not per_minute:
        return None
    if bucket is None:
        return TokenBucket(per_minute, now, burst_s)
    if bucket.per_minute != per_minute or bucket.burst_s != burst_s:
        bucket.set_rate(per_minute, now, burst_s)
    return bucket


def _describe(out: dict[str, str], name: str, bucket: TokenBucket) -> None:
    out[f"x-ratelimit-limit-{name}"] = str(int(bucket.per_minute))
    out[f"x-ratelimit-remaining-{name}"] = str(bucket.remaining())
    out[f"x-ratelimit-reset-{name}"] = format_duration(bucket.reset_s())


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: ``20ms``, ``1s``, ``1.5s``, ``6m0s``, ``1h2m3s``."""
    if seconds < 1.0:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60.0:
        text = f"{seconds:.3f}".rstrip("0").rstrip(".")
        return f"{text}s"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + f"{minutes}m{secs}s"
