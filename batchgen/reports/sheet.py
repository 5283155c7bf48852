"""The HTML report's pictures (their thumbnails from ``reports/thumbs.py``): the contact sheet
with the image checks' flags and the best image of each job, and the quality section with the
weakest images and the judge's reasons."""

from __future__ import annotations

from pathlib import Path

from batchgen.analyze.images import saved_images
from batchgen.analyze.model import Quality, RunReport
from batchgen.reports.figures import below_threshold, by_key, setting, words
from batchgen.reports.page import e, html_table
from batchgen.reports.thumbs import picture

CONTACT_SHEET = 48


def contact_sheet(r: RunReport, out_dir: Path) -> str:
    run_dir = Path(r.run_dir)
    flagged = {f.path: f.problem for f in r.image_checks.findings or ()}
    best = set(r.quality.best_images.values()) if r.quality else set()
    figures = []
    for img in saved_images(run_dir, limit=CONTACT_SHEET):
        data, href = picture(run_dir, img.path, out_dir)
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
        data, href = picture(run_dir, w.image_path, out_dir)
        pic = (
            f'<img loading="lazy" src="{data}" alt="{e(w.prompt or "")}">'
            if data
            else '<div class="muted" style="height:160px">cannot decode</div>'
        )
        defects = "; ".join(w.defects)
        figures.append(
            f'<figure><a href="{e(href)}" class="flag">{pic}</a>'
            f'<figcaption title="{e(w.prompt or "")}"><b>{w.score:.1f}</b>'
            f"{' ★ best of its job' if w.best else ''} {e(Path(w.image_path).stem)}<br>"
            f"{e(w.reasons)}{'<br><i>' + e(defects) + '</i>' if defects else ''}"
            "</figcaption></figure>"
        )
    return f'<div class="sheet">{"".join(figures)}</div>' if figures else "<p>None.</p>"


def quality_html(r: RunReport, out_dir: Path) -> str:
    """Scores: summary, distribution, score by setting beside cost, the weakest images with
    the judge's reasons (thumbnails), and the cheaper-setting finding."""
    q = r.quality
    if not q:
        return (
            '<p class="muted">Not scored: <code>batchgen score RUN_DIR --judge MODEL</code> '
            "(or <code>--scorer clip</code>) scores every image against its prompt.</p>"
        )
    mean = f"{q.mean:.2f}" if q.mean is not None else "n/a"
    by = html_table(
        ["model", "quality", "size", "scored", "mean score", "cost / image"],
        [
            [
                e(setting(g.model)),
                e(setting(g.quality)),
                e(setting(g.size)),
                f"{g.images_scored:,}",
                f"{g.mean_score:.2f}",
                e(by_key("cost_per_image_usd").fmt(g.cost_per_image_usd)),
            ]
            for g in q.by_setting
        ],
        {3, 4, 5},
    )
    cheaper = "".join(f"<li>{e(c.message)}</li>" for c in q.cheaper_settings)
    regen = (
        f" {q.jobs_regenerated:,} job(s) regenerated over {q.rounds} round(s);"
        f" {q.jobs_best_from_regeneration} now have their best image from a new round."
        if q.jobs_regenerated
        else ""
    )
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
