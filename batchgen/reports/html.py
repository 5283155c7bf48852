"""The HTML report: one self-contained offline file (inline CSS, charts and thumbnails as
data: URLs, no script, nothing fetched).  Every piece of run data goes through ``e()``
(``html.escape``), so a prompt ``<script>`` is shown as text."""

from __future__ import annotations

import base64
import html
import io
import os
import urllib.parse
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from PIL import Image

from batchgen.analyze.images import IMAGE_ERRORS, no_bombs, saved_images
from batchgen.reports.charts import charts
from batchgen.reports.figures import (
    DELTA_KEYS,
    KEY_FIGURES,
    NO_RECOMMENDATION,
    autopilot_line,
    below_threshold,
    by_key,
    delta_text,
    kind_label,
    pct,
    rating_label,
    setting,
    words,
)
from batchgen.reports.grid import GRID_CSS, by_variable_html, edit_pairs_html, grid_html
from batchgen.reports.markdown import RATING_KEYS
from batchgen.reports.model import Comparison, ImageChecks, Quality, RunReport
from batchgen.reports.pilot import pilot_html
from batchgen.storage.cache import is_uri, thumbnail

THUMB_PX = 160
CONTACT_SHEET = 48
FAILED_SHOWN = 100

CSS = """
body{
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
  background:#f6f7f9;color:#1f2937;}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.muted{color:#6b7280}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:14px;margin:10px 0}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px}
.big{font-size:24px;font-weight:600}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.excellent{background:#dcfce7;color:#166534}
.good{background:#e0f2fe;color:#075985}
.acceptable{background:#fef9c3;color:#854d0e}
.poor{background:#fee2e2;color:#991b1b}
.na{background:#e5e7eb;color:#374151}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eef0f3;vertical-align:top;
  overflow-wrap:break-word}
table.checks td{overflow-wrap:anywhere}
th{background:#f3f4f6;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;overflow-wrap:normal}
.wide{overflow-x:auto;max-width:100%}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:12px}
.charts img{width:100%;height:auto}
.sheet{display:flex;flex-wrap:wrap;gap:8px}
.sheet figure{
  margin:0;width:160px;background:#fff;border:1px solid #e5e7eb;border-radius:6px;
  overflow:hidden;}
.sheet img{display:block;width:160px;height:160px;object-fit:cover}
.sheet figcaption{font-size:11px;padding:4px;overflow-wrap:anywhere;line-height:1.3}
.sheet figcaption .best{color:#b45309;font-weight:600}
.flag{outline:3px solid #dc2626}
.prompt{
  font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;word-break:break-word;}
table.kv{max-width:720px}
li{margin:4px 0}
.better{color:#166534}
.worse{color:#991b1b}
"""


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{e(title)}</title><style>{CSS}{GRID_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _badge(rating: str | None) -> str:
    return f'<span class="badge {e(rating or "na")}">{e(rating or "n/a")}</span>'


def _table(
    header: list[str], rows: list[list[str]], numeric: AbstractSet[int] = frozenset(), cls: str = ""
) -> str:
    """``rows`` hold HTML already escaped by the caller."""
    head = "".join(
        f'<th class="n">{e(h)}</th>' if i in numeric else f"<th>{e(h)}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    attr = f' class="{cls}"' if cls else ""
    # a wide table scrolls inside its box; the page never does
    return (
        f'<div class="wide"><table{attr}><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


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
            f"{r.images:,} images · peak "
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
        f"{_badge(rating) if name != 'images / min' else ''} "
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


def _thumb(path: Path) -> str | None:
    try:
        with no_bombs(), Image.open(path) as im:
            im.draft("RGB", (THUMB_PX, THUMB_PX))
            rgb = im.convert("RGB")
        rgb.thumbnail((THUMB_PX, THUMB_PX))
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=75)
    except IMAGE_ERRORS:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _remote_thumb(run_dir: Path, uri: str) -> str | None:
    jpeg = thumbnail(run_dir, uri, THUMB_PX)
    return None if jpeg is None else "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()


def _contact_sheet(r: RunReport, out_dir: Path) -> str:
    run_dir = Path(r.run_dir)
    flagged = {f.path: f.problem for f in r.image_checks.findings or ()}
    best = set(r.quality.best_images.values()) if r.quality else set()
    figures = []
    for img in saved_images(run_dir, limit=CONTACT_SHEET):
        if is_uri(img.path):  # --images-to: the object's thumbnail, cached in RUN_DIR/cache
            data, href = _remote_thumb(run_dir, img.path), img.path
        else:
            data = _thumb(img.file)
            href = urllib.parse.quote(os.path.relpath(img.file.resolve(), out_dir.resolve()))
        problem = flagged.get(img.path)
        flag = ' class="flag"' if problem else ""
        pic = (
            f'<img loading="lazy" src="{data}" alt="{e(img.prompt)}">'
            if data
            else '<div class="muted" style="height:160px">cannot decode</div>'
        )
        star = '<span class="best">★ best</span> ' if img.path in best else ""
        figures.append(
            f'<figure><a href="{e(href)}"{flag}>{pic}</a>'
            f'<figcaption title="{e(img.prompt)}">{star}'
            f"{e(words(problem) + ': ' if problem else '')}"
            f"{e(Path(img.path).stem)}</figcaption></figure>"
        )
    if not figures:
        return '<p class="muted">No saved images.</p>'
    return f'<div class="sheet">{"".join(figures)}</div>'


def _link(file: Path, out_dir: Path) -> str:
    return urllib.parse.quote(os.path.relpath(file.resolve(), out_dir.resolve()))


def _score_bars(q: Quality) -> str:
    top = max((d.images for d in q.distribution), default=0) or 1
    return "".join(
        f'<div title="{d.images} images"><span style="display:inline-block;width:2em">'
        f'{d.score}</span><span style="display:inline-block;background:#4a7;height:0.9em;'
        f'width:{300 * d.images / top:.0f}px"></span> {d.images}</div>'
        for d in q.distribution
    )


def _weakest(q: Quality, run_dir: Path, out_dir: Path) -> str:
    figures = []
    for w in q.weakest:
        file = run_dir / w.image_path
        data = _thumb(file)
        pic = (f'<img loading="lazy" src="{data}" alt="{e(w.prompt or "")}">' if data
               else '<div class="muted" style="height:160px">cannot decode</div>')  # fmt: skip
        defects = "; ".join(w.defects)
        figures.append(
            f'<figure><a href="{e(_link(file, out_dir))}" class="flag">{pic}</a>'
            f'<figcaption title="{e(w.prompt or "")}"><b>{w.score:.1f}</b>'
            f"{' ★ best of its job' if w.best else ''} {e(Path(w.image_path).stem)}<br>"
            f"{e(w.reasons)}{'<br><i>' + e(defects) + '</i>' if defects else ''}"
            "</figcaption></figure>"
        )
    return f'<div class="sheet">{"".join(figures)}</div>' if figures else "<p>None.</p>"


def _quality(r: RunReport, out_dir: Path) -> str:
    """Scores: summary, distribution, score by setting beside cost, the weakest images with
    the judge's reasons (thumbnails), and the cheaper-setting finding."""
    q = r.quality
    if not q:
        return (
            '<p class="muted">Not scored: <code>batchgen score RUN_DIR --judge MODEL</code> '
            "(or <code>--scorer clip</code>) scores every image against its prompt.</p>"
        )
    mean = f"{q.mean:.2f}" if q.mean is not None else "n/a"
    by = _table(
        ["model", "quality", "size", "scored", "mean score", "cost / image"],
        [
            [e(setting(g.model)), e(setting(g.quality)), e(setting(g.size)), f"{g.images_scored:,}",
             f"{g.mean_score:.2f}", e(by_key("cost_per_image_usd").fmt(g.cost_per_image_usd))]
            for g in q.by_setting
        ],
        {3, 4, 5},
    )  # fmt: skip
    cheaper = "".join(f"<li>{e(c.message)}</li>" for c in q.cheaper_settings)
    regen = (
        f" {q.jobs_regenerated:,} job(s) regenerated over {q.rounds} round(s);"
        f" {q.jobs_best_from_regeneration} now have their best image from a new round."
        if q.jobs_regenerated else ""
    )  # fmt: skip
    below = below_threshold(q.jobs_below_threshold, q.jobs_scored, q.threshold)
    return (
        f"<p>{q.images_scored:,} images scored by <code>{e(q.scorer)}</code>: mean "
        f"{mean}; {below}.{e(regen)} Scoring cost "
        f"{e(by_key('cost_usd_total').fmt(q.scoring_cost_usd))} "
        f"({q.scoring_requests:,} requests).</p>"
        + f"<h3>Score distribution</h3>{_score_bars(q)}"
        + "<h3>Score by setting</h3>"
        + by
        + (f"<ul>{cheaper}</ul>" if cheaper else "")
        + "<h3>Weakest images</h3>"
        + _weakest(q, Path(r.run_dir), out_dir)
    )


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
    return _table(
        ["class", "attempts", "skipped", "diagnosis / remedy", "top messages", "sample jobs"],
        rows,
        {1, 2},
    )


def _image_checks(ic: ImageChecks) -> str:
    if not ic.enabled:
        return '<p class="muted">Skipped (--no-image-checks).</p>'
    counts = " · ".join(f"{e(words(k))}: <b>{v:,}</b>" for k, v in (ic.counts or {}).items())
    rows = [[e(words(f.problem)), e(f.path), e(f.job_id), e(f.detail)] for f in ic.findings or ()]
    listing = _table(["problem", "file", "job", "detail"], rows, cls="checks") if rows else ""
    checked, flagged = ic.checked or 0, ic.flagged or 0
    return f"<p>{checked:,} images checked, {flagged:,} flagged — {counts}</p>{listing}"


def _ratings(r: RunReport) -> str:
    return _table(
        ["what", "value", "rating", "bounds (excellent / good / acceptable)"],
        [
            [
                e(rating_label(k, by_key(RATING_KEYS[k]).label)),
                e(by_key(RATING_KEYS[k]).fmt(v.value)),
                _badge(v.rating),
                e(" / ".join(by_key(RATING_KEYS[k]).fmt(b) for b in v.bounds)),
            ]
            for k, v in r.ratings.items()
        ],
    )


def _cost(r: RunReport) -> str:
    table = _table(
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
    sources = ", ".join(f"{e(k)}: {v.rows:,} rows" for k, v in r.cost_by_source.items())
    return (
        table
        + f'<p class="muted">cost source: {sources}. {e(r.cost_note or "")}</p>'
        + f'<p class="muted">{e(r.paused_note)}</p>'
        + (f"<p><b>{e(autopilot_line(r.autopilot))}</b></p>" if r.autopilot else "")
    )


def _failed(r: RunReport) -> str:
    if not r.failed_jobs:
        return "<p>No failed jobs.</p>"
    return _table(
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
    figs = _table(
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
        + pilot_html(r, out_dir, e, _table, _thumb)
        + ("<h2>Charts</h2>" + _charts([r]) if with_charts else "")
        + f"<h2>Figures</h2>{figs}<h2>Ratings</h2>{_ratings(r)}<h2>Cost</h2>{_cost(r)}"
        + by_variable_html(r, e, _table)
        + grid_html(r, out_dir, e, _thumb)
        + edit_pairs_html(r, out_dir, e, _thumb)
        + f"<h2>Errors by class</h2>{_errors(r)}"
        + f"<h2>Failed jobs ({r.jobs_failed:,})</h2>{_failed(r)}"
        + f"<h2>Quality</h2>{_quality(r, out_dir)}"
        + f"<h2>Image checks</h2>{_image_checks(r.image_checks)}"
        + f"<h2>Contact sheet</h2>{_contact_sheet(r, out_dir)}"
    )


def render_html(report: RunReport, out_path: Path) -> str:
    """The page for one run; ``out_path`` is where it will be written (image links are
    relative to it)."""
    title = f"batchgen report — {report.run_name}"
    body = f"<h1>{e(title)}</h1>" + _run_body(report, Path(out_path).parent)
    return _page(title, body)


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
        + _table(["figure", f"A: {a.run_name}", f"B: {b.run_name}", "Δ"], rows, {1, 2, 3})
        + "<h2>Charts (both runs)</h2>"
        + _charts([a, b])
        + f"<h2>A: {e(a.run_name)}</h2>"
        + _run_body(a, out_dir, with_charts=False)
        + f"<h2>B: {e(b.run_name)}</h2>"
        + _run_body(b, out_dir, with_charts=False)
    )
    return _page(title, body)
