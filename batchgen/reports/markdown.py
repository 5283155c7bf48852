"""The Markdown report (for a README, an issue or a PR comment).  User text is HTML-escaped
and pipes/backticks neutralised, since Markdown renderers pass raw HTML through; terminal
control sequences are removed (the file may be `cat` to a terminal)."""

from __future__ import annotations

import html
from typing import Any

from batchgen.analyze.model import Comparison, ImageChecks, Quality, RunReport
from batchgen.errors import printable
from batchgen.numbers import plural
from batchgen.reports.figures import (
    DELTA_KEYS,
    KEY_FIGURES,
    NO_RECOMMENDATION,
    autopilot_line,
    below_threshold,
    by_key,
    delta_text,
    kind_label,
    rating_label,
    secs,
    setting,
)

RATING_KEYS = {
    "response_time": "latency_p95_s",
    "success_rate": "success_rate",
    "cost_per_image": "cost_per_image_usd",
}


def cell(value: Any) -> str:
    # a provider's message is data: no terminal control sequences, no line breaks
    text = html.escape(printable(str(value if value is not None else ""), one_line=True))
    return text.replace("|", "\\|").replace("`", "\\`").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def _section(title: str, header: list[str], rows: list[list[Any]]) -> list[str]:
    return [title, "", *_table(header, rows)]


def _ratings(r: RunReport, level: str) -> list[str]:
    out = [f"{level} Ratings", ""]
    out += _table(
        ["what", "value", "rating"],
        [
            [
                rating_label(k, by_key(RATING_KEYS[k]).label),
                by_key(RATING_KEYS[k]).fmt(v.value),
                v.rating or "n/a",
            ]
            for k, v in r.ratings.items()
        ],
    )
    notes = [
        f"{k.replace('_', ' ')} judged against {v.baseline}"
        for k, v in r.ratings.items()
        if v.baseline
    ]
    return out + ([cell(n) for n in notes] + [""] if notes else [])


def _cost(r: RunReport, level: str) -> list[str]:
    if not r.cost_by_group:
        return []
    out = [f"{level} Cost by model × quality × size", ""]
    out += _table(
        ["model", "quality", "size", "images", "cost", "per image"],
        [
            [
                setting(g.model),
                setting(g.quality),
                setting(g.size),
                g.images,
                by_key("cost_usd_total").fmt(g.cost_usd),
                by_key("cost_per_image_usd").fmt(g.cost_per_image_usd),
            ]
            for g in r.cost_by_group
        ],
    )
    return out + ([cell(r.cost_note), ""] if r.cost_note else [])


def _variables(r: RunReport, level: str) -> list[str]:
    if not r.by_variable:
        return []
    return _section(
        f"{level} By variable",
        ["variable", "value", "jobs", "ok", "failed", "pending", "success", "p95", "cost"],
        [
            [
                name,
                x.value,
                x.jobs,
                x.succeeded,
                x.failed,
                x.pending,
                by_key("success_rate").fmt(x.success_rate),
                by_key("latency_p95_s").fmt(x.latency_p95_s),
                by_key("cost_usd_total").fmt(x.cost_usd),
            ]
            for name, values in r.by_variable.items()
            for x in values
        ],
    )


def _errors(r: RunReport, level: str) -> list[str]:
    if not r.error_details:
        return []
    return _section(
        f"{level} Errors by class",
        ["class", "attempts", "skipped", "diagnosis", "remedy", "top message"],
        [
            [
                k,
                d.attempts,
                d.skipped,
                d.diagnosis,
                d.remedy,
                d.messages[0].message if d.messages else "",
            ]
            for k, d in r.error_details.items()
        ],
    )


def _failed(r: RunReport, level: str) -> list[str]:
    if not r.failed_jobs:
        return []
    return [
        f"{level} Failed jobs",
        "",
        *_table(
            ["job", "class", "message", "prompt"],
            [[j.job_id, j.error_class, j.message, j.prompt] for j in r.failed_jobs[:50]],
        ),
    ]


def _image_checks(ic: ImageChecks, level: str) -> list[str]:
    out = [f"{level} Image checks", ""]
    if not ic.enabled:
        return [*out, "Skipped (--no-image-checks).", ""]
    checked, found = plural(ic.checked or 0, "image"), plural(ic.flagged or 0, "problem")
    out += [f"{checked} checked, {found} found.", ""]
    out += _table(["problem", "count"], [[k, v] for k, v in (ic.counts or {}).items()])
    if ic.findings:
        out += _table(
            ["problem", "file", "job", "detail"],
            [[f.problem, f.path, f.job_id, f.detail] for f in ic.findings[:50]],
        )
    return out


def _quality(q: Quality | None, level: str) -> list[str]:
    if not q:
        return []
    mean = f"{q.mean:.2f}" if q.mean is not None else "n/a"
    out = [f"{level} Quality", ""]
    out += [
        cell(
            f"{plural(q.images_scored, 'image')} scored by {q.scorer}, mean {mean}; "
            f"{below_threshold(q.jobs_below_threshold, q.jobs_scored, q.threshold)}; "
            f"scoring cost ${q.scoring_cost_usd:.4f}"
        ),
        "",
    ]
    out += _table(
        ["model", "quality", "size", "scored", "mean score", "cost / image"],
        [
            [
                setting(g.model),
                setting(g.quality),
                setting(g.size),
                g.images_scored,
                f"{g.mean_score:.2f}",
                by_key("cost_per_image_usd").fmt(g.cost_per_image_usd),
            ]
            for g in q.by_setting
        ],
    )
    return out + _table(
        ["score", "image", "best", "reasons"],
        [[f"{w.score:.1f}", w.image_path, "best" if w.best else "", w.reasons] for w in q.weakest],
    )


def _endpoints(r: RunReport, level: str) -> list[str]:
    if not r.by_endpoint:
        return []
    return _section(
        f"{level} By endpoint",
        ["endpoint", "protocol", "jobs", "ok", "images", "p50", "cost", "learned rpm", "taken out"],
        [
            [
                e.name,
                e.protocol,
                e.jobs,
                e.jobs_succeeded,
                e.images,
                secs(e.latency_p50_s),
                f"${e.cost_usd:.4f}",
                "-" if e.learned_rpm is None else f"{e.learned_rpm:,.0f}",
                (e.taken_out or {}).get("class", ""),
            ]
            for e in r.by_endpoint
        ],
    )


def _recommendations(r: RunReport, level: str) -> list[str]:
    items = [f"- **{cell(kind_label(x.kind))}**: {cell(x.message)}" for x in r.recommendations]
    return [f"{level} Recommendations", ""] + (items or [NO_RECOMMENDATION])


def _body(r: RunReport, level: str = "##") -> list[str]:
    out = _table(["figure", "value"], [[f.label, f.fmt(f.get(r))] for f in KEY_FIGURES])
    out += _ratings(r, level) + _cost(r, level) + _variables(r, level)
    out += _errors(r, level) + _failed(r, level) + _image_checks(r.image_checks, level)
    out += _quality(r.quality, level)
    if r.autopilot:
        out += [cell(autopilot_line(r.autopilot)), ""]
    out += _endpoints(r, level) + _recommendations(r, level)
    return [*out, ""]


def render_markdown(report: RunReport) -> str:
    report = report.printable()
    head = [
        f"# batchgen report — {cell(report.run_name)}",
        "",
        f"`{cell(report.run_dir)}`",
        "",
    ]
    return "\n".join(head + _body(report))


def render_compare_markdown(cmp: Comparison) -> str:
    cmp = cmp.printable()
    a, b = cmp.runs
    out = [
        f"# batchgen comparison — A: {cell(a.run_name)}, B: {cell(b.run_name)}",
        "",
        "Δ = B − A; ✓ better, ✗ worse.",
        "",
    ]
    order = [by_key(k) for k in DELTA_KEYS] + [f for f in KEY_FIGURES if f.key not in DELTA_KEYS]
    out += _table(
        ["figure", "A", "B", "Δ"],
        [
            [f.label, f.fmt(f.get(a)), f.fmt(f.get(b)), delta_text(f, f.get(a), f.get(b))]
            for f in order
        ],
    )
    for label, r in zip("AB", (a, b), strict=False):
        out += [f"## {label}: {cell(r.run_name)}", "", *_body(r, "###")]
    return "\n".join(out)
