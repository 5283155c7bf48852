"""The quote: what a job stream will cost and how long it must take, before anything is sent.

``quote`` is pure and streams (memory grows with the number of model × quality × size groups,
not with the jobs); ``plan`` prints it and ``run`` shows it before the first request.

Minimum wall time is the largest of three lower bounds:
* requests/min: the last request cannot start before ``(requests - 1) / rpm``, then takes a
  latency;
* images/min: likewise with ``images / ipm``;
* concurrency: each slot serves its requests one after another, ``Σ latency / concurrency``.

The latency is ``--assume-latency`` or the model's ``typical_latency_s`` from the table
(gpt-image: 15 s, the middle of the 10–20 s a medium 1024x1024 image usually takes). It is an
assumption, so the figure is a floor for planning, not a promise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from batchgen.jobs.model import Job
from batchgen.money.cost import SOURCE_TABLE, SOURCE_UNKNOWN, estimate_job
from batchgen.money.table import AUTO, PriceTable

DEFAULT_LATENCY_S = 15.0


@dataclass(frozen=True, slots=True)
class QuoteLine:
    """One model × quality × size group. Costs are None when the model has no price."""

    model: str
    quality: str
    size: str
    jobs: int
    images: int
    low_usd: float | None
    expected_usd: float | None
    high_usd: float | None
    cost_source: str  # price-table / unknown
    assumption: str = ""  # e.g. "auto quoted as medium 1024x1024"

    @property
    def is_range(self) -> bool:
        return (
            self.low_usd is not None and self.high_usd is not None and self.low_usd < self.high_usd
        )


@dataclass(frozen=True, slots=True)
class WallTime:
    """The least time the batch can take under the given limits (seconds)."""

    seconds: float
    bound: str  # which limit binds: rpm / ipm / concurrency / latency / none
    rpm: float | None
    ipm: float | None
    concurrency: int | None
    latency_s: float  # mean assumed latency per request


@dataclass(frozen=True, slots=True)
class Quote:
    lines: tuple[QuoteLine, ...]
    jobs: int
    images: int
    low_usd: float
    expected_usd: float
    high_usd: float
    wall: WallTime
    unknown_models: tuple[str, ...] = ()
    price_files: tuple[str, ...] = ()

    def wall_band(self) -> tuple[float, float]:
        """The run's duration as the quote states it: from the minimum wall time to that plus
        the autopilot's slow start (one request a second, doubling each clean second: about
        log2(requests + 1) s until the last request can leave, and a second more) and one more
        request's latency for the slowest answer. An estimate from the assumed latency."""
        wall = self.wall
        if not self.jobs:
            return (0.0, 0.0)
        ramp = math.log2(self.jobs + 1) + 1.0
        return (wall.seconds, wall.seconds + ramp + wall.latency_s)

    @property
    def complete(self) -> bool:
        """False when some jobs' models have no price (their cost is not in the totals)."""
        return not self.unknown_models

    def expected_without(self, models: Iterable[str]) -> float:
        """The expected total of the jobs of every model but ``models``: a total comparable
        with another quote that could not price those (the Batch API's, for dall-e-3)."""
        left_out = set(models)
        return sum(line.expected_usd or 0.0 for line in self.lines if line.model not in left_out)


class _Group:
    """One quote line's running sums. A plain class, not a dataclass: private, and ~1 ms
    less to define at every start."""

    __slots__ = ("expected", "high", "images", "jobs", "low", "priced")

    def __init__(self) -> None:
        self.jobs = self.images = 0
        self.low = self.expected = self.high = 0.0
        self.priced = True


class Quoter:
    """The quote built one job at a time: ``add`` each job, then ``result``. For a caller that
    sees the jobs inside another pass over the file (``validate_file(on_job=...)``), so the
    file is read once; :func:`quote` is the same over an iterable."""

    __slots__ = (
        "_assume",
        "_groups",
        "_images",
        "_latencies",
        "_latency_sum",
        "_prices",
        "_requests",
    )

    def __init__(
        self, prices: PriceTable, *, assume_latency: float | Callable[[Job], float] | None = None
    ) -> None:
        self._prices = prices
        self._assume = assume_latency
        self._groups: dict[tuple[str, str, str], _Group] = {}
        self._latencies: dict[str | None, float] = {}  # per model: a table lookup, once
        self._latency_sum = 0.0
        self._requests = 0
        self._images = 0

    def add(self, job: Job) -> None:
        prices = self._prices
        model, n = job.model, job.n  # properties that read the body: once each per job
        key = (str(model or "(none)"), str(job.quality or AUTO), str(job.size or AUTO))
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
        estimate = estimate_job(prices, job)
        group.jobs += 1
        group.images += n
        if estimate is None:
            group.priced = False
        else:
            group.low += estimate.low
            group.expected += estimate.expected
            group.high += estimate.high
        self._requests += 1
        self._images += n
        assume = self._assume
        if callable(assume):  # each job's own (the simulator's model latencies)
            self._latency_sum += assume(job)
            return
        latency = self._latencies.get(model)
        if latency is None:
            latency = self._latencies[model] = _latency(prices, model, assume)
        self._latency_sum += latency

    def result(
        self,
        *,
        rpm: float | None = None,
        ipm: float | None = None,
        concurrency: int | None = None,
    ) -> Quote:
        prices = self._prices
        lines = tuple(_line(prices, key, g) for key, g in sorted(self._groups.items()))
        priced = [line for line in lines if line.cost_source != SOURCE_UNKNOWN]
        unknown = {line.model for line in lines if line.cost_source == SOURCE_UNKNOWN}
        return Quote(
            lines=lines,
            jobs=self._requests,
            images=self._images,
            low_usd=math.fsum(line.low_usd or 0.0 for line in priced),
            expected_usd=math.fsum(line.expected_usd or 0.0 for line in priced),
            high_usd=math.fsum(line.high_usd or 0.0 for line in priced),
            wall=min_wall_time(
                self._requests,
                self._images,
                self._latency_sum,
                rpm=rpm,
                ipm=ipm,
                concurrency=concurrency,
            ),
            unknown_models=tuple(sorted(unknown)),
            price_files=prices.files,
        )


def quote(
    jobs: Iterable[Job],
    prices: PriceTable,
    *,
    rpm: float | None = None,
    ipm: float | None = None,
    concurrency: int | None = None,
    assume_latency: float | None = None,
) -> Quote:
    """Cost and minimum wall time of ``jobs`` (consumed once, streamed)."""
    quoter = Quoter(prices, assume_latency=assume_latency)
    add = quoter.add
    for job in jobs:
        add(job)
    return quoter.result(rpm=rpm, ipm=ipm, concurrency=concurrency)


def min_wall_time(
    requests: int,
    images: int,
    latency_sum: float,
    *,
    rpm: float | None,
    ipm: float | None,
    concurrency: int | None,
) -> WallTime:
    """The largest of the rate, image-rate and concurrency lower bounds (see module doc)."""
    mean_latency = latency_sum / requests if requests else 0.0
    if not requests:
        return WallTime(0.0, "none", rpm, ipm, concurrency, 0.0)
    bounds = {"latency": mean_latency}
    if rpm:
        bounds["rpm"] = (requests - 1) * 60.0 / rpm + mean_latency
    if ipm:
        bounds["ipm"] = max(images - 1, 0) * 60.0 / ipm + mean_latency
    if concurrency:
        bounds["concurrency"] = max(latency_sum / concurrency, mean_latency)
    bound = max(bounds, key=lambda name: bounds[name])
    return WallTime(bounds[bound], bound, rpm, ipm, concurrency, mean_latency)


def _latency(prices: PriceTable, model: str | None, assume: float | None) -> float:
    if assume is not None:
        return assume
    limits = prices.constraints_for(model)
    if limits and limits.typical_latency_s:
        return limits.typical_latency_s
    return DEFAULT_LATENCY_S


def _line(prices: PriceTable, key: tuple[str, str, str], group: _Group) -> QuoteLine:
    model, quality, size = key
    if not group.priced:
        return QuoteLine(
            model, quality, size, group.jobs, group.images, None, None, None, SOURCE_UNKNOWN
        )
    return QuoteLine(
        model,
        quality,
        size,
        group.jobs,
        group.images,
        group.low,
        group.expected,
        group.high,
        SOURCE_TABLE,
        _assumption(prices, model, quality, size),
    )


def _assumption(prices: PriceTable, model: str, quality: str, size: str) -> str:
    entry = prices.get(model)
    if entry is None:
        return (
            f"--price-per-image ${prices.fallback_per_image}" if prices.fallback_per_image else ""
        )
    said = []
    if quality not in entry.known_qualities() and len(entry.known_qualities()) > 1:
        said.append(f"quality {quality} quoted as {entry.auto_quality}")
    if size == AUTO:
        said.append(f"size auto quoted as {entry.auto_size}")
    return "; ".join(said)


def quote_to_dict(quote: Quote) -> dict[str, Any]:
    """JSON-ready: every figure of the quote, with ``is_range`` per line."""
    data = dataclasses.asdict(quote)
    for line, raw in zip(quote.lines, data["lines"], strict=True):
        raw["is_range"] = line.is_range
    data["complete"] = quote.complete
    return data
