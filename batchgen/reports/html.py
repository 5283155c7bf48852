"""The HTML report: one self-contained offline file (inline CSS, charts and thumbnails as
data: URLs, no script, nothing fetched).  Every piece of run data goes through ``e()``
(``html.escape``), so a prompt ``<script>`` is shown as text. The sections are here; the page,
its CSS and tables are in ``page.py``, the thumbnails, contact sheet and quality section in
``sheet.py``."""

from __future__ import annotations

from pathlib import Path

from batchgen.analyze.model import Comparison, ImageChecks, RunReport
from batchgen.numbers import plural
from batchgen.reports.charts import charts
from batchgen.reports.figures import (
    DELTA_KEYS,
    KEY_FIGURES,
    NO_RECOMMENDATION,
    autopilot_line,
    by_key,
    delta_text,
    kind_label,
    pct,
    rating_label,
    setting,
    words,
)
from batchgen.reports.grid import by_variable_html, edit_pairs_html, grid_html
from batchgen.reports.markdown import RATING_KEYS
from batchgen.reports.page import badge, e, html_page, html_table
from batchgen.reports.pilot import pilot_html
from batchgen.reports.sheet import contact_sheet, quality_html
from batchgen.reports.thumbs import thumb

FAILED_SHOWN = 100


def _cards(r: RunReport) -> str:
    rt = r.ratings
    items = [
        (
            "success rate",
            pct(r.success_rate),
            rt["success_rate"].rating,
            f"{r.jobs_succeeded:,} ok · {r.jobs_failed:,} failed · {r.jobs_pending:,} pending",
        ),
        (
            "latency p95",
            by_key("latency_p95_s").fmt(r.latency_s.p95),
            rt["response_time"].rating,
            f"p50 {by_key('latency_p50_s').fmt(r.latency_s.p50)}",
        ),
        (
            "images / min",
            by_key("images_per_min").fmt(r.images_per_min),
            None,
            f"{plural(r.images, 'image')} · peak "
            f"{by_key('images_per_min_peak').fmt(r.images_per_min_peak)}",
        ),
        (
            "cost per image",
            by_key("cost_per_image_usd").fmt(r.cost_per_image_usd),
            rt["cost_per_image"].rating,
            f"total {by_key('cost_usd_total').fmt(r.cost_usd_total)}",
        ),
    ]
    html_items = "".join(
        f'<div class="card"><div class="muted">{e(name)}</div><div class="big">{e(value)}</div>'
        f"{badge(rating) if name != 'images / min' else ''} "
        f'<span class="muted">{e(sub)}</span></div>'
        for name, value, rating, sub in items
    )
    return f'<div class="cards">{html_items}</div>'


def _charts(reports: list[RunReport]) -> str:
    imgs = "".join(
        f'<div class="card"><img alt="{e(name)} chart" src="{url}"></div>'
        for name, url in charts(reports).items()
    )
    return f'<div class="charts">{imgs}</div>'


def _errors(r: RunReport) -> str:
    if not r.error_details:
        return "<p>No errors.</p>"
    rows = []
    for name, d in r.error_details.items():
        msgs = "<br>".join(
            f'{e(m.message)} <span class="muted">×{m.count}</span>' for m in d.messages
        )
        samples = "<br>".join(
            f'{e(s.job_id)}: <span class="prompt">{e(s.prompt)}</span>' for s in d.samples
        )
        rows.append(
            [
                e(name),
                str(d.attempts),
                str(d.skipped),
                f"{e(d.diagnosis)}<br><b>→</b> {e(d.remedy)}",
                msgs,
                samples,
            ]
        )
    return html_table(
        ["class", "attempts", "skipped", "diagnosis / remedy", "top messages", "sample jobs"],
        rows,
        {1, 2},
    )


def _image_checks(ic: ImageChecks) -> str:
    if not ic.enabled:
        return '<p class="muted">Skipped (--no-image-checks).</p>'
    counts = " · ".join(f"{e(words(k))}: <b>{v:,}</b>" for k, v in (ic.counts or {}).items())
    rows = [[e(words(f.problem)), e(f.path), e(f.job_id), e(f.detail)] for f in ic.findings or ()]
    listing = html_table(["problem", "file", "job", "detail"], rows, cls="checks") if rows else ""
    checked, found = plural(ic.checked or 0, "image"), plural(ic.flagged or 0, "problem")
    return f"<p>{checked} checked, {found} found — {counts}</p>{listing}"


def _ratings(r: RunReport) -> str:
    return html_table(
        ["what", "value", "rating", "bounds (excellent / good / acceptable)"],
        [
            [
                e(rating_label(k, by_key(RATING_KEYS[k]).label)),
                e(by_key(RATING_KEYS[k]).fmt(v.value)),
                badge(v.rating),
                e(" / ".join(by_key(RATING_KEYS[k]).fmt(b) for b in v.bounds)),
            ]
            for k, v in r.ratings.items()
        ],
    )


def _cost(r: RunReport) -> str:
    table = html_table(
        ["model", "quality", "size", "images", "attempts", "cost", "per image"],
        [
            [
                e(setting(g.model)),
                e(setting(g.quality)),
                e(setting(g.size)),
                f"{g.images:,}",
                f"{g.attempts:,}",
                e(by_key("cost_usd_total").fmt(g.cost_usd)),
                e(by_key("cost_per_image_usd").fmt(g.cost_per_image_usd)),
            ]
            for g in r.cost_by_group
        ],
        {3, 4, 5, 6},
    )
    sources = ", ".join(f"{e(k)}: {plural(v.rows, 'row')}" for k, v in r.cost_by_source.items())
    return (
        table
        + f'<p class="muted">cost source: {sources}. {e(r.cost_note or "")}</p>'
        + f'<p class="muted">{e(r.paused_note)}</p>'
        + (f"<p><b>{e(autopilot_line(r.autopilot))}</b></p>" if r.autopilot else "")
    )


def _failed(r: RunReport) -> str:
    if not r.failed_jobs:
        return "<p>No failed jobs.</p>"
    return html_table(
        ["job", "class", "HTTP", "message", "prompt"],
        [
            [
                e(j.job_id),
                e(j.error_class),
                e(j.http_status),
                e(j.message),
                f'<span class="prompt">{e(j.prompt)}</span>',
            ]
            for j in r.failed_jobs[:FAILED_SHOWN]
        ],
    )


def _run_body(r: RunReport, out_dir: Path, with_charts: bool = True) -> str:
    sessions = ", ".join(f"#{s.session} {words(s.how, 'no end recorded')}" for s in r.sessions)
    figs = html_table(
        ["figure", "value"], [[e(f.label), e(f.fmt(f.get(r)))] for f in KEY_FIGURES], {1}, "kv"
    )
    recs = (
        "".join(
            f'<li title="{e(x.kind)}"><b>{e(kind_label(x.kind))}</b>: {e(x.message)}</li>'
            for x in r.recommendations
        )
        or f"<li>{e(NO_RECOMMENDATION)}</li>"
    )
    return (
        f'<p class="muted">{e(r.run_dir)} · sessions: {e(sessions or "none recorded")}</p>'
        + _cards(r)
        + f"<h2>Recommendations</h2><ul>{recs}</ul>"
        + pilot_html(r, out_dir, e, html_table, thumb)
        + ("<h2>Charts</h2>" + _charts([r]) if with_charts else "")
        + f"<h2>Figures</h2>{figs}<h2>Ratings</h2>{_ratings(r)}<h2>Cost</h2>{_cost(r)}"
        + by_variable_html(r, e, html_table)
        + grid_html(r, out_dir, e, thumb)
        + edit_pairs_html(r, out_dir, e, thumb)
        + f"<h2>Errors by class</h2>{_errors(r)}"
        + f"<h2>Failed jobs ({r.jobs_failed:,})</h2>{_failed(r)}"
        + f"<h2>Quality</h2>{quality_html(r, out_dir)}"
        + f"<h2>Image checks</h2>{_image_checks(r.image_checks)}"
        + f"<h2>Contact sheet</h2>{contact_sheet(r, out_dir)}"
    )


def render_html(report: RunReport, out_path: Path) -> str:
    """The page for one run; ``out_path`` is where it will be written (image links are
    relative to it)."""
    title = f"batchgen report — {report.run_name}"
    body = f"<h1>{e(title)}</h1>" + _run_body(report, Path(out_path).parent)
    return html_page(title, body)


def render_compare_html(cmp: Comparison, out_path: Path) -> str:
    a, b = cmp.runs
    title = f"batchgen comparison — {a.run_name} vs {b.run_name}"
    order = [by_key(k) for k in DELTA_KEYS] + [f for f in KEY_FIGURES if f.key not in DELTA_KEYS]
    rows = []
    for f in order:
        va, vb = f.get(a), f.get(b)
        d = delta_text(f, va, vb)
        cls = "better" if d.endswith("✓") else "worse" if d.endswith("✗") else ""
        rows.append([e(f.label), e(f.fmt(va)), e(f.fmt(vb)), f'<span class="{cls}">{e(d)}</span>'])
    out_dir = Path(out_path).parent
    body = (
        f'<h1>{e(title)}</h1><p class="muted">Δ = B − A; ✓ better, ✗ worse.</p>'
        + html_table(["figure", f"A: {a.run_name}", f"B: {b.run_name}", "Δ"], rows, {1, 2, 3})
        + "<h2>Charts (both runs)</h2>"
        + _charts([a, b])
        + f"<h2>A: {e(a.run_name)}</h2>"
        + _run_body(a, out_dir, with_charts=False)
        + f"<h2>B: {e(b.run_name)}</h2>"
        + _run_body(b, out_dir, with_charts=False)
    )
    return html_page(title, body)
