"""Figures from the attempt log: jobs, latency, throughput, rate limiting and cost.

Job-level and attempt-level figures are kept apart: a job is one line of the job file, an
attempt is one request (one row with status ok/error).  All work is columnar (pyarrow compute
and numpy) on the few columns each figure needs, so a 1M-row log reports in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batchgen.analyze.load import floats, seconds, strings
from batchgen.analyze.model import (
    Histogram,
    Latency,
    Retries,
    Series,
    Wait,
)
from batchgen.errors import ErrorClass
from batchgen.runlog.manifest import Manifest
from batchgen.runlog.schema import STATUS_ERROR, STATUS_OK
from batchgen.runlog.state import (
    DONE,
    FAILED,
    RETRYABLE_FAILED,
    states_from_table,
)

CORE_COLUMNS = [
    "job_id",
    "session",
    "attempt",
    "status",
    "final",
    "error_class",
    "error_code",
    "http_status",
    "latency_s",
    "wait_s",
    "retry_after_s",
    "finished_at",
    "image_count",
    "cost_usd",
    "cost_source",
    "model",
    "quality",
    "size",
    "fingerprint",
]
# what batchgen.runlog.state needs to decide each job's state
STATE_COLUMNS = ["job_id", "session", "status", "final", "error_class", "fingerprint"]

PERCENTILES = (50, 90, 95, 99)
# Bin widths for "throughput over time": the smallest that keeps a chart under ~120 bars.
_NICE_BINS_S = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)


@dataclass(frozen=True, slots=True)
class Columns:
    """The core columns as numpy arrays, decoded once and shared by every figure."""

    job_id: pa.ChunkedArray
    session: np.ndarray
    status: np.ndarray
    final: np.ndarray
    error_class: np.ndarray
    error_code: np.ndarray
    latency_s: np.ndarray
    wait_s: np.ndarray
    retry_after_s: np.ndarray
    finished_at: np.ndarray
    image_count: np.ndarray
    cost_usd: np.ndarray
    ok: np.ndarray
    sent: np.ndarray  # rows that are attempts (a request went out), not jobs skipped unsent
    table: pa.Table

    @classmethod
    def from_table(cls, table: pa.Table) -> Columns:
        status = strings(table["status"])
        return cls(
            job_id=table["job_id"],
            session=floats(table["session"]),
            status=status,
            final=pc.fill_null(table["final"], False).to_numpy(zero_copy_only=False),
            error_class=strings(table["error_class"]),
            error_code=strings(table["error_code"]),
            latency_s=floats(table["latency_s"]),
            wait_s=floats(table["wait_s"]),
            retry_after_s=floats(table["retry_after_s"]),
            finished_at=seconds(table["finished_at"]),
            image_count=floats(table["image_count"]),
            cost_usd=floats(table["cost_usd"]),
            ok=status == STATUS_OK,
            # a reused image (cost_source "reused": run --reuse / --from-pilot) sent nothing
            sent=((status == STATUS_OK) | (status == STATUS_ERROR))
            & (strings(table["cost_source"]) != "reused"),
            table=table,
        )

    def images_per_row(self) -> np.ndarray:
        # An ok row whose writer left image_count null still saved at least one image.
        counts = np.where(np.isnan(self.image_count), 1.0, self.image_count)
        return np.where(self.ok, counts, 0.0)


def _stats(values: np.ndarray) -> Latency:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return Latency(p50=None, p90=None, p95=None, p99=None, max=None, mean=None)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
    return Latency(
        p50=p50, p90=p90, p95=p95, p99=p99, max=float(values.max()), mean=float(values.mean())
    )


@dataclass(frozen=True, slots=True)
class JobFigures:
    """The report's job-level figures (RunReport's fields of the same names), and the ids of
    the failed jobs, which the failure list reads (not a figure of the report itself)."""

    jobs_total: int
    jobs_succeeded: int
    jobs_failed: int
    jobs_failed_by_class: dict[str, int]
    jobs_pending: int
    success_rate: float | None
    completion: float | None
    attempts: int
    attempts_ok: int
    attempt_success_rate: float | None
    retries_per_job: Retries
    failed_ids: pa.ChunkedArray


def job_figures(cols: Columns, manifest: Manifest) -> JobFigures:
    """Job states are resume's own (``batchgen.runlog.state``: a job's last final row
    decides), so the report and resume never disagree.  succeeded = done; failed = failed
    for good (content_policy, bad_request) or out of attempts on a retryable class; pending =
    the rest of run.json's total: stopped by auth/quota/budget/cancel, cut mid-job by a crash,
    or never taken."""
    states = states_from_table(cols.table.select(STATE_COLUMNS)).table
    state = strings(states["state"])
    failing = (state == FAILED) | (state == RETRYABLE_FAILED)
    succeeded = int((state == DONE).sum())
    failed = int(failing.sum())
    classes, counts = np.unique(strings(states["error_class"])[failing], return_counts=True)

    seen_jobs = states.num_rows
    total = manifest.jobs if manifest.jobs is not None else seen_jobs
    decided = succeeded + failed
    sent_ids = cols.job_id.filter(pa.array(cols.sent))
    per_job = pc.value_counts(sent_ids).field("counts").to_numpy(zero_copy_only=False)
    attempts = int(cols.sent.sum())
    return JobFigures(
        jobs_total=int(total),
        jobs_succeeded=succeeded,
        jobs_failed=failed,
        jobs_failed_by_class={str(c): int(n) for c, n in zip(classes, counts, strict=False)},
        jobs_pending=max(0, int(total) - decided),
        success_rate=(succeeded / decided) if decided else None,
        completion=(decided / total) if total else None,
        attempts=attempts,
        attempts_ok=int(cols.ok.sum()),
        attempt_success_rate=(float(cols.ok.sum()) / attempts) if attempts else None,
        retries_per_job=Retries(
            mean=float(per_job.mean() - 1) if per_job.size else None,
            max=int(per_job.max() - 1) if per_job.size else None,
        ),
        failed_ids=states["job_id"].filter(pa.array(failing)),
    )


def _sessions_active_s(cols: Columns, manifest: Manifest) -> float:
    """Time covered by the sessions; a session still running (or killed without an end) ends
    at its last logged attempt.  Without sessions in run.json, the log's own span per
    session stands in. Sessions that ran at the same time (the shards of a ``--ray`` run)
    count once: the union of their spans, which for sessions run one after another is the
    sum of their durations."""
    fin = cols.finished_at
    spans: list[tuple[float, float]] = []
    covered: set[int] = set()
    for s in manifest.sessions:
        mask = (cols.session == s.session) & ~np.isnan(fin)
        last = float(fin[mask].max()) if mask.any() else None
        first = (
            float((fin[mask] - np.nan_to_num(cols.latency_s[mask])).min()) if mask.any() else None
        )
        start = s.started_at if s.started_at is not None else first
        end = s.ended_at if s.ended_at is not None else last
        if start is not None and end is not None and end > start:
            spans.append((start, end))
            covered.add(s.session)
    for sess in np.unique(cols.session[~np.isnan(cols.session)]):
        if int(sess) in covered:
            continue
        mask = (cols.session == sess) & ~np.isnan(fin)
        if mask.any():
            start = float((fin[mask] - np.nan_to_num(cols.latency_s[mask])).min())
            spans.append((start, max(start, float(fin[mask].max()))))
    return _union_s(spans)


def _union_s(spans: list[tuple[float, float]]) -> float:
    total, reach = 0.0, -math.inf
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _bin_width(span_s: float, events: float) -> int:
    """The smallest nice width giving at most 120 bins and, where the run is long enough for
    10 bins, about 5 images per bin: narrower bins turn a steady rate into noise."""
    for width in _NICE_BINS_S:
        bins = span_s / width
        if bins <= 120 and (bins <= 10 or events / max(bins, 1.0) >= 5):
            return width
    return math.ceil(span_s / 120)


def time_series(cols: Columns) -> Series:
    """Images, attempts, 429s and cost per time bin, from the first to the last attempt."""
    fin = cols.finished_at
    have = ~np.isnan(fin)
    if not have.any():
        return Series(
            bin_s=None, start=None, t=(), images=(), attempts=(), rate_limited=(), cost_usd=()
        )
    start = float(fin[have].min())
    span = float(fin[have].max()) - start
    width = _bin_width(max(span, 1.0), float(cols.images_per_row().sum()))
    nbins = int(span // width) + 1
    idx = ((fin[have] - start) // width).astype(np.int64)

    def per_bin(weights: np.ndarray) -> tuple[float, ...]:
        return tuple(np.bincount(idx, weights=weights[have], minlength=nbins).tolist())

    return Series(
        bin_s=width,
        start=start,
        t=tuple(i * width for i in range(nbins)),
        images=per_bin(cols.images_per_row()),
        attempts=per_bin(cols.sent.astype(float)),
        rate_limited=per_bin((cols.error_class == ErrorClass.RATE_LIMIT).astype(float)),
        cost_usd=per_bin(np.nan_to_num(cols.cost_usd)),
    )


@dataclass(frozen=True, slots=True)
class Throughput:
    images: int
    images_requested: int | None
    active_s: float
    images_per_min: float | None
    images_per_min_peak: float | None
    attempts_per_min: float | None


def throughput_figures(cols: Columns, manifest: Manifest, series: Series) -> Throughput:
    images = float(cols.images_per_row().sum())
    active = _sessions_active_s(cols, manifest)
    width = series.bin_s
    per_min = [n * 60.0 / width for n in series.images] if width else []
    return Throughput(
        images=int(images),
        images_requested=manifest.images,
        active_s=active,
        images_per_min=(images * 60.0 / active) if active > 0 else None,
        images_per_min_peak=max(per_min) if per_min else None,
        attempts_per_min=(float(cols.sent.sum()) * 60.0 / active) if active > 0 else None,
    )


@dataclass(frozen=True, slots=True)
class LatencyFigures:
    latency_s: Latency
    wait_s: Wait
    latency_histogram: Histogram


def latency_figures(cols: Columns) -> LatencyFigures:
    sent = cols.sent
    wait = cols.wait_s[sent]
    wait = wait[~np.isnan(wait)]
    ok_lat = cols.latency_s[cols.ok]
    ok_lat = ok_lat[~np.isnan(ok_lat)]
    hist_counts, hist_edges = (
        np.histogram(ok_lat, bins=min(40, max(5, int(np.sqrt(ok_lat.size)))))
        if ok_lat.size
        else (np.array([]), np.array([]))
    )
    return LatencyFigures(
        latency_s=_stats(ok_lat),
        wait_s=Wait(
            mean=float(wait.mean()) if wait.size else None,
            p95=float(np.percentile(wait, 95)) if wait.size else None,
            total=float(wait.sum()),
        ),
        latency_histogram=Histogram(
            edges=tuple(hist_edges.tolist()), counts=tuple(hist_counts.tolist())
        ),
    )


@dataclass(frozen=True, slots=True)
class RateLimitFigures:
    rate_limited: int
    rate_limited_share: float
    paused_s_approx: float
    paused_note: str
    accepted_rpm: float | None


def rate_limit_figures(cols: Columns, active_s: float) -> RateLimitFigures:
    attempts = int(cols.sent.sum())
    limited = (cols.error_class == ErrorClass.RATE_LIMIT) & cols.sent
    n = int(limited.sum())
    accepted = attempts - n
    return RateLimitFigures(
        rate_limited=n,
        rate_limited_share=(n / attempts) if attempts else 0.0,
        # Workers wait out the same pause side by side, so this sum over-counts wall time.
        paused_s_approx=float(np.nansum(cols.retry_after_s[limited])),
        paused_note="sum of Retry-After over 429 answers: an approximation (pauses overlap)",
        accepted_rpm=(accepted * 60.0 / active_s) if active_s > 0 else None,
    )
