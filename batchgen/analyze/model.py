"""The report as types: what ``batchgen report`` shows, in sections the renderers read.

``RunReport`` is one run's report; ``Comparison`` two runs side by side. The analyzers build
these frozen dataclasses directly (``analyze_run`` returns a RunReport; this module sits in
analyze/ because analyze is below reports in the layers; ``batchgen.reports.model`` re-exports
it). ``to_dict`` writes the JSON document ``batchgen/reports/schema.json`` describes (fields in
the document's order); ``from_dict`` reads such a document back (``Report.from_dict``, a
report saved as JSON), refusing a key it does not know and a missing one.

Free-form parts (settings, the autopilot's record, a recommendation's evidence, counts keyed
by class or problem) stay mappings: their keys are data, not schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchgen.analyze.section import OMIT_IF_NONE, Json, Section

# ---- one run's sections, in the document's order ------------------------------------------


@dataclass(frozen=True, slots=True)
class Session(Section):
    session: int
    started_at: float | None
    ended_at: float | None
    how: str | None


@dataclass(frozen=True, slots=True)
class Retries(Section):
    mean: float | None
    max: int | None


@dataclass(frozen=True, slots=True)
class Latency(Section):
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None
    mean: float | None


@dataclass(frozen=True, slots=True)
class Wait(Section):
    mean: float | None
    p95: float | None
    total: float | None


@dataclass(frozen=True, slots=True)
class Histogram(Section):
    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CostGroup(Section):
    model: str
    quality: str
    size: str
    cost_usd: float | None
    images: int
    attempts: int
    cost_per_image_usd: float | None


@dataclass(frozen=True, slots=True)
class CostSource(Section):
    rows: int
    cost_usd: float | None


@dataclass(frozen=True, slots=True)
class MessageCount(Section):
    message: str
    count: int


@dataclass(frozen=True, slots=True)
class Sample(Section):
    job_id: str
    prompt: str | None


@dataclass(frozen=True, slots=True)
class ErrorDetail(Section):
    attempts: int
    skipped: int
    action: str | None
    diagnosis: str
    remedy: str
    messages: tuple[MessageCount, ...]
    samples: tuple[Sample, ...]


@dataclass(frozen=True, slots=True)
class FailedJob(Section):
    job_id: str
    error_class: str | None
    http_status: int | None
    error_code: str | None
    message: str | None
    prompt: str | None


@dataclass(frozen=True, slots=True)
class VariableRow(Section):
    value: str
    jobs: int
    succeeded: int
    failed: int
    pending: int
    success_rate: float | None
    attempts: int
    images: int
    cost_usd: float
    latency_p50_s: float | None
    latency_p95_s: float | None


@dataclass(frozen=True, slots=True)
class EditPair(Section):
    job_id: str
    state: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Series(Section):
    """Per time bin (counts as floats: numpy's weighted bincount); no bins when nothing ran."""

    bin_s: float | None
    start: float | None
    t: tuple[float, ...]
    images: tuple[float, ...]
    attempts: tuple[float, ...]
    rate_limited: tuple[float, ...]
    cost_usd: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Endpoint(Section):
    name: str | None
    protocol: str | None
    base_url: str | None
    models: Json
    attempts: int
    jobs: int
    jobs_succeeded: int
    success_rate: float | None
    images: int
    throttled: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    cost_usd: float
    learned_rpm: float | None
    learned_ipm: float | None
    learned_concurrency: int | None
    taken_out: dict[str, Json] | None


@dataclass(frozen=True, slots=True)
class ScoreBucket(Section):
    score: int
    images: int


@dataclass(frozen=True, slots=True)
class WeakImage(Section):
    job_id: str
    image_path: str
    score: float
    defects: tuple[str, ...]
    reasons: str
    round: int
    best: bool
    prompt: str | None


@dataclass(frozen=True, slots=True)
class SettingScore(Section):
    model: str | None
    quality: str | None
    size: str | None
    images_scored: int
    mean_score: float
    images: int
    cost_usd: float | None
    cost_per_image_usd: float | None


@dataclass(frozen=True, slots=True)
class CheaperSetting(Section):
    cheaper: dict[str, Json]
    dearer: dict[str, Json]
    margin: float
    saving_per_image_usd: float
    message: str


@dataclass(frozen=True, slots=True)
class Quality(Section):
    scorer: str | None
    kind: str | None
    threshold: float
    images_scored: int
    images_not_scored: int
    jobs_scored: int
    mean: float | None
    median: float | None
    images_below_threshold: int
    jobs_below_threshold: int
    jobs_regenerated: int
    jobs_best_from_regeneration: int
    rounds: int
    distribution: tuple[ScoreBucket, ...]
    weakest: tuple[WeakImage, ...]
    best_images: dict[str, str]
    scoring_cost_usd: float
    scoring_requests: int
    scoring_cost_per_image_usd: float | None
    by_setting: tuple[SettingScore, ...]
    cheaper_settings: tuple[CheaperSetting, ...]


@dataclass(frozen=True, slots=True)
class Rating(Section):
    metric: str
    value: float | None
    rating: str | None
    bounds: tuple[float, ...]
    # what the bounds were judged against (response time: the usual latency of the run's
    # models), when not the fixed defaults
    baseline: str | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True, slots=True)
class Advice(Section):
    """A recommendation: what to change next time, and the figures that say so."""

    kind: str
    message: str
    evidence: dict[str, Json]


@dataclass(frozen=True, slots=True)
class Finding(Section):
    problem: str  # missing / undecodable / wrong_size / blank / blurred / duplicate
    path: str
    job_id: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class ImageChecks(Section):
    """``enabled`` False (``--no-image-checks``): the other keys are left out."""

    enabled: bool
    checked: int | None = field(default=None, metadata=OMIT_IF_NONE)
    counts: dict[str, int] | None = field(default=None, metadata=OMIT_IF_NONE)
    flagged: int | None = field(default=None, metadata=OMIT_IF_NONE)
    findings: tuple[Finding, ...] | None = field(default=None, metadata=OMIT_IF_NONE)
    duplicate_groups: Json = field(default=None, metadata=OMIT_IF_NONE)
    measured: dict[str, int] | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True, slots=True)
class GridJob(Section):
    job_id: str
    state: str
    error_class: str | None
    images: tuple[str, ...]
    label: str  # what tells it from the other jobs of its cell (other variables, repeat)


@dataclass(frozen=True, slots=True)
class GridCell(Section):
    row: str
    col: str
    jobs: tuple[GridJob, ...]


@dataclass(frozen=True, slots=True)
class Grid(Section):
    """``--grid A,B``: a spec run's jobs over two variables (rows A, columns B)."""

    rows: str
    cols: str
    row_values: tuple[str, ...]
    col_values: tuple[str, ...]
    cells: tuple[GridCell, ...]


@dataclass(frozen=True, slots=True)
class RunReport(Section):
    """One run: figures, sections, ratings, recommendations and image checks."""

    report_version: int
    run_dir: str
    run_name: str | None
    settings: dict[str, Json]
    sessions: tuple[Session, ...]
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
    images: int
    images_requested: int | None
    active_s: float
    images_per_min: float | None
    images_per_min_peak: float | None
    attempts_per_min: float | None
    latency_s: Latency
    wait_s: Wait
    latency_histogram: Histogram
    rate_limited: int
    rate_limited_share: float | None
    paused_s_approx: float
    paused_note: str
    accepted_rpm: float | None
    cost_usd_total: float
    cost_per_image_usd: float | None
    cost_wasted_usd: float
    cost_by_group: tuple[CostGroup, ...]
    cost_by_source: dict[str, CostSource]
    cost_unknown_rows: int
    cost_note: str | None
    autopilot: dict[str, Json] | None
    by_endpoint: tuple[Endpoint, ...]
    possibly_billed_twice: int
    errors: dict[str, int]
    skipped: dict[str, int]
    error_details: dict[str, ErrorDetail]
    failed_jobs: tuple[FailedJob, ...]
    by_variable: dict[str, tuple[VariableRow, ...]]
    edit_pairs: tuple[EditPair, ...]
    series: Series
    quality: Quality | None
    ratings: dict[str, Rating]
    recommendations: tuple[Advice, ...]
    image_checks: ImageChecks
    grid: Grid | None = field(default=None, metadata=OMIT_IF_NONE)


# ---- two runs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delta(Section):
    """One figure of a comparison: A's, B's, B − A and whether B is better (None: a count)."""

    a: Json
    b: Json
    delta: float | None
    better: bool | None


@dataclass(frozen=True, slots=True)
class Comparison(Section):
    """Two runs, B relative to A; ``headline`` names the deltas shown first."""

    compare: bool
    runs: tuple[RunReport, RunReport]
    deltas: dict[str, Delta]
    headline: tuple[str, ...]


def section_from_dict(doc: Mapping[str, Any]) -> RunReport | Comparison:
    """The report a JSON document (``--format json``) holds: one run or a comparison."""
    return Comparison.from_dict(doc) if doc.get("compare") else RunReport.from_dict(doc)
