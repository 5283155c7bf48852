"""The figures every format shows, in one order, with one way of printing each; and the
comparison of two runs.  Renderers (text, Markdown, HTML) only lay these out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from batchgen.analyze.model import Comparison, Delta, RunReport
from batchgen.numbers import plural

Getter = Callable[[RunReport], Any]


def pct(v: Any) -> str:
    return "–" if v is None else f"{v:.1%}"


def secs(v: Any) -> str:
    return "–" if v is None else f"{v:.2f} s"


def usd(v: Any) -> str:
    return "–" if v is None else (f"${v:.4f}" if abs(v) < 1 else f"${v:,.2f}")


def num(v: Any) -> str:
    if v is None:
        return "–"
    return f"{v:,}" if isinstance(v, int) else f"{v:,.1f}"


# a recommendation's kind is a stable key (JSON); people read these labels
_KIND_LABELS = {
    "cheaper_setting_scores_as_well": "Cheaper setting, same scores",
    "regenerate_weak": "Weak images",
    "rpm": "Rate limit",
    "limits": "Limits",
    "timeout": "Timeout",
    "content_policy": "Content policy",
    "bad_request": "Bad requests",
    "cheaper": "Cheaper option",
    "billed_twice": "Possibly billed twice",
    "pending": "Jobs pending",
    "server": "Server errors",
    "network": "Network errors",
    "invalid_response": "Unusable answers",
}
NO_RECOMMENDATION = "Nothing in this run's figures calls for a change."


def kind_label(kind: str) -> str:
    """``cheaper_setting_scores_as_well`` → ``Cheaper setting, same scores``; an unknown kind
    reads as words (``stop_quota`` → ``Stopped: quota``)."""
    if kind in _KIND_LABELS:
        return _KIND_LABELS[kind]
    if kind.startswith("stop_"):
        return f"Stopped: {kind.removeprefix('stop_').replace('_', ' ')}"
    return kind.replace("_", " ").capitalize()


def below_threshold(jobs_below: int, jobs_scored: int, threshold: float) -> str:
    """The quality summary's sentence on weak jobs, worded for both cases."""
    if not jobs_below:
        if jobs_scored == 1:
            return f"the 1 job scored has an image scoring {threshold:g} or more"
        return f"all {jobs_scored:,} jobs scored have an image scoring {threshold:g} or more"
    have = "has" if jobs_below == 1 else "have"
    return (
        f"{jobs_below:,} of {plural(jobs_scored, 'job')} {have} no image scoring "
        f"{threshold:g} or more"
    )


def rating_label(name: str, metric_label: str) -> str:
    """``response_time`` rated on the figure ``latency p95`` → ``response time (latency p95)``;
    ``success_rate`` on ``success rate (decided jobs)`` → the figure's label alone."""
    spoken = name.replace("_", " ")
    return metric_label if metric_label.startswith(spoken) else f"{spoken} ({metric_label})"


def words(key: str | None, missing: str = "") -> str:
    """A stored key as words (``failed_jobs`` → ``failed jobs``, ``wrong_size`` → ``wrong
    size``)."""
    return missing if not key else str(key).replace("_", " ")


def setting(value: Any) -> str:
    """A model, quality or size as the report shows it: one the job left to the provider
    is the provider's ``default``."""
    return "default" if value in (None, "", "?", "None") else str(value)


@dataclass(frozen=True, slots=True)
class Figure:
    key: str  # stable name (the compare JSON's delta keys)
    label: str
    get: Getter
    fmt: Callable[[Any], str]
    higher_is_better: bool | None = None  # None: not a quality (a count)


def _lat(p: str) -> Getter:
    return lambda r: getattr(r.latency_s, p)


KEY_FIGURES: tuple[Figure, ...] = (
    Figure("jobs_total", "jobs (run.json)", lambda r: r.jobs_total, num),
    Figure("jobs_succeeded", "jobs succeeded", lambda r: r.jobs_succeeded, num),
    Figure("jobs_failed", "jobs failed", lambda r: r.jobs_failed, num),
    Figure("jobs_pending", "jobs pending", lambda r: r.jobs_pending, num),
    Figure("success_rate", "success rate (decided jobs)", lambda r: r.success_rate, pct, True),
    Figure("attempts", "attempts", lambda r: r.attempts, num),
    Figure(
        "attempt_success_rate",
        "attempt success rate",
        lambda r: r.attempt_success_rate,
        pct,
        True,
    ),
    Figure(
        "retries_mean",
        "retries per job (mean)",
        lambda r: r.retries_per_job.mean,
        lambda v: "–" if v is None else f"{v:.2f}",
        False,
    ),
    Figure("retries_max", "retries per job (max)", lambda r: r.retries_per_job.max, num),
    Figure("images", "images saved", lambda r: r.images, num),
    Figure("latency_p50_s", "latency p50", _lat("p50"), secs, False),
    Figure("latency_p90_s", "latency p90", _lat("p90"), secs, False),
    Figure("latency_p95_s", "latency p95", _lat("p95"), secs, False),
    Figure("latency_p99_s", "latency p99", _lat("p99"), secs, False),
    Figure("latency_max_s", "latency max", _lat("max"), secs, False),
    Figure("latency_mean_s", "latency mean", _lat("mean"), secs, False),
    Figure("wait_mean_s", "limiter wait (mean)", lambda r: r.wait_s.mean, secs, False),
    Figure("images_per_min", "images/min (active time)", lambda r: r.images_per_min, num, True),
    Figure(
        "images_per_min_peak",
        "images/min (peak bin)",
        lambda r: r.images_per_min_peak,
        num,
        True,
    ),
    Figure(
        "rate_limited_share",
        "rate-limited attempts (429)",
        lambda r: r.rate_limited_share,
        pct,
        False,
    ),
    Figure(
        "paused_s_approx",
        "paused by 429 (≈ Σ Retry-After)",
        lambda r: r.paused_s_approx,
        secs,
        False,
    ),
    Figure("cost_usd_total", "cost total", lambda r: r.cost_usd_total, usd),
    Figure("cost_per_image_usd", "cost per image", lambda r: r.cost_per_image_usd, usd, False),
    Figure(
        "cost_wasted_usd",
        "cost of attempts without an image",
        lambda r: r.cost_wasted_usd,
        usd,
        False,
    ),
    Figure(
        "possibly_billed_twice",
        "possibly billed twice",
        lambda r: r.possibly_billed_twice,
        num,
        False,
    ),
)

# The deltas a comparison leads with (the brief's four), then the rest of KEY_FIGURES.
DELTA_KEYS = ("success_rate", "latency_p95_s", "images_per_min", "cost_per_image_usd")


def delta_text(fig: Figure, a: Any, b: Any) -> str:
    if a is None or b is None or not isinstance(a, (int, float)):
        return "–"
    d = b - a
    if fig.fmt is pct:
        text = f"{d * 100:+.1f} pt"
    elif fig.fmt is usd:
        text = f"{'+' if d >= 0 else '-'}{usd(abs(d))}"
    elif fig.fmt is secs:
        text = f"{d:+.2f} s"
    else:
        text = f"{d:+,.1f}" if isinstance(d, float) else f"{d:+,}"
    if fig.higher_is_better is not None and d != 0:
        text += " ✓" if (d > 0) == fig.higher_is_better else " ✗"
    return text


def compare(a: RunReport, b: RunReport) -> Comparison:
    """Two runs side by side: B relative to A."""
    deltas = {}
    for fig in KEY_FIGURES:
        va, vb = fig.get(a), fig.get(b)
        both = isinstance(va, (int, float)) and isinstance(vb, (int, float))
        better = (
            None
            if not both or vb == va or fig.higher_is_better is None
            else (vb > va) == fig.higher_is_better
        )
        deltas[fig.key] = Delta(a=va, b=vb, delta=(vb - va) if both else None, better=better)
    return Comparison(compare=True, runs=(a, b), deltas=deltas, headline=DELTA_KEYS)


def by_key(key: str) -> Figure:
    return next(f for f in KEY_FIGURES if f.key == key)


_SOURCE = {
    "headers": "x-ratelimit headers",
    "429 text": "the 429's text",
    "429": "429s",
    "latency": "latency",
    "flag": "flag",
}


def autopilot_line(ap: Mapping[str, Any]) -> str:
    """One line on what the limiter learned: ``limits found: 1200 req/min (x-ratelimit
    headers) · 24 in flight (429s) · peak 24 in flight · 9 429s``."""
    if not ap.get("adaptive", True):
        return "limits: fixed (--no-adapt)"
    parts = []
    for key, unit in (("rpm", "req/min"), ("ipm", "img/min")):
        if ap.get(key) is not None:
            parts.append(
                f"{ap[key]:,.0f} {unit} ({_SOURCE.get(str(ap.get(key + '_source')), '?')})"
            )
    if ap.get("concurrency") is not None:
        src = _SOURCE.get(str(ap.get("concurrency_source")), "?")
        parts.append(f"{ap['concurrency']:,} in flight ({src})")
    if not parts:
        parts.append("no provider limit met")
    sessions = int(ap.get("sessions") or 1)
    over = f" over {sessions} sessions" if sessions > 1 else ""
    parts.append(f"peak {ap.get('peak_inflight', 0):,} in flight{over}")
    if ap.get("throttled"):
        parts.append(f"{ap['throttled']} × 429")
    if ap.get("capped_pause_s"):
        parts.append(f"a {ap['capped_pause_s']:.0f}s Retry-After was capped")
    head = f"limits found (session #{ap['session']})" if sessions > 1 else "limits found"
    return f"{head}: " + " · ".join(parts)
