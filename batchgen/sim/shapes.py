"""Realistic provider shapes for the autopilot: what image APIs look like from a client.

Modelled on the providers' documentation, not on what batchgen handles:
* OpenAI's image models answer in tens of seconds (gpt-image-1 ~15–60 s by quality), dall-e-3
  in ~10 s; limits are per organisation and model, on requests per minute and on **images per
  minute** (``n`` counts), the first tier at 5 images/min. A 429 says so in its text: "Rate
  limit reached for gpt-image-1 in organization org-… on images per min (IPM): Limit 5, Used
  5, Requested 1. Please try again in 12s." — often with no ``x-ratelimit-*`` headers at all.
* Gateways and self-hosted servers answer a plain "Rate limit exceeded" with no headers and
  no ``Retry-After``, or a ``Retry-After`` in whole seconds (RFC 9110).
* Queue-style providers (fal, BFL, Replicate) cap the tasks one key may have running.
* Limits move: an organisation's limit is lowered under load and restored later.

A :class:`Shape` is one such provider; ``sim_knobs`` turns it into simulator knobs (for the
real-time benchmark, with ``time_scale`` < 1 to replay it faster: latencies × scale, limits ÷
scale, schedule times × scale) and ``ideal_s`` is the wall time the work needs at the binding
limit plus one mean latency, the denominator of "efficiency".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Shape:
    key: str
    title: str
    jobs: int
    ns: tuple[int, ...] = (1,)  # n of each job, in turn
    rpm: float | None = None
    ipm: float | None = None
    schedule: tuple[tuple[float, float], ...] = ()  # (t, rpm) from t on
    max_concurrent: int | None = None
    headers: bool = False  # x-ratelimit-* on every answer
    message: str = "plain"  # "stated": OpenAI's 429 text naming the limit; "plain"
    retry_after: str = "none"  # ms | seconds | none
    latency_median: float = 1.0
    latency_sigma: float = 0.3  # of the log: lognormal jitter around the median
    hint: bool = False  # whether anything (headers, text) states a limit
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def latency_mean(self) -> float:
        return self.latency_median * math.exp(self.latency_sigma**2 / 2)

    def n_of(self, i: int) -> int:
        return self.ns[i % len(self.ns)]

    @property
    def images(self) -> int:
        return sum(self.n_of(i) for i in range(self.jobs))

    def work_s(self) -> float:
        """Seconds the work needs at the binding limit (the schedule followed)."""
        if self.max_concurrent is not None and self.rpm is None and self.ipm is None:
            return self.jobs * self.latency_mean / self.max_concurrent
        if self.ipm is not None:
            return self.images * 60.0 / self.ipm
        assert self.rpm is not None
        left, t, rpm = float(self.jobs), 0.0, self.rpm
        for at, nxt in (*self.schedule, (math.inf, 0.0)):
            span = at - t
            if left <= rpm * span / 60.0:
                return t + left * 60.0 / rpm
            left -= rpm * span / 60.0
            t, rpm = at, nxt
        return t

    def ideal_s(self) -> float:
        return self.work_s() + self.latency_mean

    def limit_per_s(self) -> float:
        """The binding limit's per-second share, in requests (images for an ipm shape)."""
        if self.ipm is not None:
            return self.ipm / 60.0
        if self.rpm is not None:
            return max(r for r in (self.rpm, *(r for _, r in self.schedule))) / 60.0
        assert self.max_concurrent is not None
        return self.max_concurrent / self.latency_mean

    def sim_knobs(self, time_scale: float = 1.0) -> dict[str, Any]:
        """The simulator's knobs for this shape, time scaled by ``time_scale``."""
        s = time_scale
        knobs: dict[str, Any] = {
            "latency_mean": self.latency_mean * s,
            "latency_jitter": self.latency_mean
            * s
            * math.sqrt(math.exp(self.latency_sigma**2) - 1),
            "ratelimit_headers": self.headers,
            "limit_message": self.message,
            "retry_after_mode": self.retry_after,
            "tiny": True,
        }
        if self.rpm is not None:
            knobs["rpm"] = self.rpm / s
        if self.ipm is not None:
            knobs["ipm"] = self.ipm / s
        if self.schedule:
            knobs["limit_schedule"] = [[t * s, r / s] for t, r in self.schedule]
        if self.max_concurrent is not None:
            knobs["max_concurrent"] = self.max_concurrent
        return knobs


# the seven shapes (issue 21), each 2–4 minutes of work at its limit (12 for 5 img/min):
# the last requests' latency tail (the slowest of ~75 in flight is ~2× the median) costs a
# fixed ~15 s whatever the client does, so shorter runs measure the provider, not the client
SHAPES: tuple[Shape, ...] = (
    Shape("rpm-headers-5s", "600 req/min in x-ratelimit headers, 5 s", jobs=1200, rpm=600,
          headers=True, message="stated", retry_after="ms", latency_median=5.0, hint=True),
    Shape("rpm-plain-15s", "300 req/min, no headers, Retry-After whole s, 15 s", jobs=1500,
          rpm=300, retry_after="seconds", latency_median=15.0),
    Shape("ipm-text-10s", "240 img/min in the 429 text, n = 1/2/4, 10 s", jobs=420,
          ns=(1, 2, 4), ipm=240, message="stated", retry_after="none", latency_median=10.0,
          hint=True),
    Shape("ipm-plain-10s", "240 img/min, plain 429, no Retry-After, n = 1/2/4, 10 s", jobs=420,
          ns=(1, 2, 4), ipm=240, latency_median=10.0),
    Shape("ipm5-20s", "5 img/min (first tier) in the 429 text, 20 s", jobs=60, ipm=5,
          message="stated", retry_after="none", latency_median=20.0, hint=True),
    Shape("conc16-8s", "16 concurrent tasks, 8 s, wide jitter", jobs=480, max_concurrent=16,
          latency_median=8.0, latency_sigma=0.6, hint=True),
    Shape("moving-10s", "300 req/min in headers, halved at 60 s, restored at 120 s, 10 s",
          jobs=1050, rpm=300, schedule=((60.0, 150.0), (120.0, 300.0)), headers=True,
          message="stated", retry_after="ms", latency_median=10.0, hint=True),
)  # fmt: skip

BY_KEY = {s.key: s for s in SHAPES}
