"""The terminal report (rich tables).  Prompts and messages go in as ``Text`` objects, never as
markup strings, so a prompt like ``[bold]`` or ``[/]`` is shown as typed; every string of the
report loses its terminal control sequences (errors.printable) before it is shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from batchgen.analyze.model import Comparison, Quality, RunReport
from batchgen.numbers import count as count_of
from batchgen.numbers import decimal, plural
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

RATING_STYLE = {
    "excellent": "bold green",
    "good": "green",
    "acceptable": "yellow",
    "poor": "bold red",
    None: "dim",
}
SAMPLE_FAILED = 10


def _table(title: str, *columns: str) -> Table:
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, title_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    return t


def figures_table(report: RunReport) -> Table:
    t = _table("Figures", "figure", "value")
    t.columns[1].justify = "right"
    for fig in KEY_FIGURES:
        t.add_row(fig.label, fig.fmt(fig.get(report)))
    return t


def ratings_table(report: RunReport) -> Table:
    t = _table("Ratings", "what", "value", "rating", "excellent / good / acceptable")
    for name, r in report.ratings.items():
        fig = by_key(
            {
                "response_time": "latency_p95_s",
                "success_rate": "success_rate",
                "cost_per_image": "cost_per_image_usd",
            }[name]
        )
        t.add_row(
            rating_label(name, fig.label),
            fig.fmt(r.value),
            Text(r.rating or "n/a", style=RATING_STYLE.get(r.rating, "")),
            " / ".join(fig.fmt(b) for b in r.bounds),
        )
        if r.baseline:
            t.add_row("", "", "", Text(f"against {r.baseline}", style="dim"))
    return t


def errors_table(report: RunReport) -> Group:
    t = _table("Errors by class", "class", "attempts", "skipped", "top message")
    why = Text()
    for name, d in report.error_details.items():
        top = d.messages[0] if d.messages else None
        t.add_row(
            name,
            str(d.attempts),
            str(d.skipped),
            Text(f"{top.message} (×{top.count})" if top else ""),
        )
        why.append(f" {name}: ", style="bold")
        why.append(f"{d.diagnosis}\n   → {d.remedy}\n")
    return Group(t, why)


def cost_table(report: RunReport) -> Table:
    t = _table(
        "Cost by model × quality × size", "model", "quality", "size", "images", "cost", "per image"
    )
    for g in report.cost_by_group:
        t.add_row(
            Text(setting(g.model)),
            Text(setting(g.quality)),
            Text(setting(g.size)),
            str(g.images),
            by_key("cost_usd_total").fmt(g.cost_usd),
            by_key("cost_per_image_usd").fmt(g.cost_per_image_usd),
        )
    sources = ", ".join(f"{k}: {plural(v.rows, 'row')}" for k, v in report.cost_by_source.items())
    t.caption = Text(
        f"cost source: {sources}" + (f" — {report.cost_note}" if report.cost_note else "")
    )
    return t


def failed_table(report: RunReport) -> Table:
    n = max(report.jobs_failed, len(report.failed_jobs))
    shown = f"first {SAMPLE_FAILED:,} of {n:,}" if n > SAMPLE_FAILED else f"{n:,}"
    t = _table(
        f"Failed jobs ({shown})",
        "job",
        "class",
        "message",
        "prompt",
    )
    for j in report.failed_jobs[:SAMPLE_FAILED]:
        t.add_row(Text(j.job_id), j.error_class, Text(j.message or ""), Text(j.prompt or ""))
    return t


def images_table(report: RunReport) -> Table | Text:
    ic = report.image_checks
    if not ic.enabled:
        return Text("Image checks: skipped (--no-image-checks)", style="dim")
    t = _table(
        f"Image checks: {plural(ic.checked or 0, 'image')} checked, "
        f"{plural(ic.flagged or 0, 'problem')} found",
        "problem",
        "count",
        "examples",
    )
    for problem, count in (ic.counts or {}).items():
        examples = [f.path for f in ic.findings or () if f.problem == problem][:3]
        t.add_row(words(problem), f"{count:,}", Text(", ".join(examples)))
    return t


def recommendations(report: RunReport) -> Text:
    recs = report.recommendations
    if not recs:
        return Text(f"Recommendations: none. {NO_RECOMMENDATION}")
    out = Text("Recommendations\n", style="bold")
    for r in recs:
        out.append(f" • {kind_label(r.kind)}: ", style="cyan")
        out.append(r.message + "\n")
    return out


def variables_table(report: RunReport) -> Table:
    """A spec run's success rate, latency and cost per value of each variable."""
    t = _table(
        "By variable",
        "variable",
        "value",
        "jobs",
        "ok",
        "fail",
        "pend",
        "success",
        "p50 s",
        "p95 s",
        "cost",
    )
    t.padding = (0, 1, 0, 0)
    for col in t.columns[:2]:
        col.overflow, col.no_wrap, col.max_width = "ellipsis", True, 20
    for col, width in zip(t.columns[2:], (4, 4, 4, 4, 7, 5, 5, 7), strict=True):
        col.justify, col.no_wrap, col.min_width = "right", True, width
    for name, rows in report.by_variable.items():
        for r in rows:
            t.add_row(
                Text(name),
                Text(r.value),
                str(r.jobs),
                str(r.succeeded),
                str(r.failed),
                str(r.pending),
                pct(r.success_rate),
                _secs(r.latency_p50_s),
                _secs(r.latency_p95_s),
                by_key("cost_usd_total").fmt(r.cost_usd),
            )
    return t


def _secs(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def quality_tables(q: Quality) -> list[Any]:
    """Score summary, score by setting beside cost per image, the weakest images."""
    mean = f"{q.mean:.2f}" if q.mean is not None else "n/a"
    head = Text(
        f"Quality ({q.scorer}): {plural(q.images_scored, 'image')} scored, mean {mean}; "
        f"{below_threshold(q.jobs_below_threshold, q.jobs_scored, q.threshold)}; "
        f"scoring cost ${q.scoring_cost_usd:.4f} ({plural(q.scoring_requests, 'request')})"
        + (
            f"; {plural(q.jobs_regenerated, 'job')} regenerated over "
            f"{plural(q.rounds, 'round')}, "
            f"{q.jobs_best_from_regeneration} now best from a new image"
            if q.jobs_regenerated
            else ""
        )
    )
    dist = " ".join(f"{d.score}:{d.images}" for d in q.distribution if d.images)
    by = _table(
        "Score by setting", "model", "quality", "size", "scored", "mean score", "cost / image"
    )
    for g in q.by_setting:
        per = g.cost_per_image_usd
        by.add_row(
            setting(g.model),
            setting(g.quality),
            setting(g.size),
            str(g.images_scored),
            f"{g.mean_score:.2f}",
            f"${per:.4f}" if per is not None else "n/a",
        )
    weak = _table("Weakest images", "score", "image", "best?", "reasons / defects")
    for w in q.weakest:
        why = w.reasons + (f" [{'; '.join(w.defects)}]" if w.defects else "")
        weak.add_row(f"{w.score:.1f}", w.image_path, "best" if w.best else "", why)
    return [head, Text(f"score distribution {dist}", style="dim"), by, weak]


def endpoints_table(report: RunReport) -> Table:
    """Figures by endpoint (`run --providers`)."""
    table = _table(
        "By endpoint",
        "endpoint",
        "protocol",
        "jobs",
        "success",
        "images",
        "p50 / p95 s",
        "cost",
        "429s",
        "learned rpm / conc.",
        "state",
    )

    def num(v: Any, fmt: Callable[[float], str] = decimal) -> str:
        return "-" if v is None else fmt(v)

    for ep in report.by_endpoint:
        out = ep.taken_out
        table.add_row(
            str(ep.name),
            str(ep.protocol),
            str(ep.jobs),
            num(ep.success_rate, pct),
            str(ep.images),
            f"{num(ep.latency_p50_s)} / {num(ep.latency_p95_s)}",
            f"${ep.cost_usd:.4f}",
            str(ep.throttled),
            f"{num(ep.learned_rpm, count_of)} / {num(ep.learned_concurrency, count_of)}",
            f"out ({out['class']})" if isinstance(out, dict) else "ok",
        )
    return table


def _sections(report: RunReport) -> list[Any]:
    """The tables a run has something to show in, in the report's order."""
    # the note under the figure it explains ("paused by 429 (≈ Σ Retry-After)"), not pages below
    note = Text(report.paused_note, style="dim")
    parts: list[Any] = [figures_table(report), note, ratings_table(report)]
    if report.cost_by_group:
        parts.append(cost_table(report))
    if report.by_variable:
        parts.append(variables_table(report))
    if report.error_details:
        parts.append(errors_table(report))
    if report.failed_jobs:
        parts.append(failed_table(report))
    if report.by_endpoint:
        parts.append(endpoints_table(report))
    parts.append(images_table(report))
    if report.quality:
        parts += quality_tables(report.quality)
    if report.autopilot:
        parts.append(Text(autopilot_line(report.autopilot)))
    parts.append(recommendations(report))
    return parts


def render_text(report: RunReport, console: Console) -> None:
    report = report.printable()
    title = Text(f"batchgen report — {report.run_name}", style="bold")
    sessions = ", ".join(f"#{s.session} {words(s.how, 'running?')}" for s in report.sessions)
    console.print(
        Panel(
            Text(f"{report.run_dir}\nsessions: {sessions or 'none recorded'}"),
            title=title,
            title_align="left",
        )
    )
    for part in _sections(report):
        console.print(part)


def compare_table(cmp: Comparison) -> Table:
    a, b = cmp.runs
    t = _table(
        "Comparison (Δ = B − A; ✓ better, ✗ worse)",
        "figure",
        f"A: {a.run_name}",
        f"B: {b.run_name}",
        "Δ",
    )
    head = [by_key(k) for k in DELTA_KEYS]
    rest = [f for f in KEY_FIGURES if f.key not in DELTA_KEYS]
    for i, fig in enumerate(head + rest):
        va, vb = fig.get(a), fig.get(b)
        t.add_row(
            Text(fig.label, style="bold" if i < len(head) else ""),
            fig.fmt(va),
            fig.fmt(vb),
            delta_text(fig, va, vb),
            end_section=i == len(head) - 1,
        )
    return t


def render_compare_text(cmp: Comparison, console: Console) -> None:
    cmp = cmp.printable()
    console.print(compare_table(cmp))
    for label, r in zip("AB", cmp.runs, strict=False):
        console.print(Text(f"{label}: {r.run_dir}", style="bold"))
        console.print(recommendations(r))


def summary(report: RunReport) -> Group:
    """The few lines `batchgen run` prints when it ends."""
    report = report.printable()
    line = Text()
    line.append(
        f"{report.jobs_succeeded:,} succeeded, {report.jobs_failed:,} failed, "
        f"{report.jobs_pending:,} pending of {plural(report.jobs_total, 'job')} "
        f"(success {pct(report.success_rate)}, "
        f"{report.ratings['success_rate'].rating or 'n/a'})\n"
    )
    line.append(
        f"{plural(report.images, 'image')} in {plural(report.attempts, 'attempt')}; "
        f"p95 {by_key('latency_p95_s').fmt(report.latency_s.p95)}; "
        f"{by_key('images_per_min').fmt(report.images_per_min)} images/min; "
        f"429s {pct(report.rate_limited_share)}\n"
    )
    line.append(
        f"cost {by_key('cost_usd_total').fmt(report.cost_usd_total)} "
        f"({by_key('cost_per_image_usd').fmt(report.cost_per_image_usd)} per image)"
    )
    if report.autopilot:
        line.append("\n" + autopilot_line(report.autopilot))
    if report.possibly_billed_twice:
        line.append(f"; possibly billed twice: {report.possibly_billed_twice}", style="yellow")
    _by_model(report, line)
    parts: list[Any] = [line]
    for r in report.recommendations[:3]:
        # never cut: a command to copy must be whole. No overflow of its own: the CLI's
        # soft-wrapping console (cli/session.make_console) prints it as one line the terminal
        # wraps, as it does the lines above; a "fold" here made rich cut it at the width
        parts.append(Text(f"→ {r.message}", style="cyan"))
    return Group(*parts)


def _by_model(report: RunReport, line: Text) -> None:
    by_model: dict[str, float] = {}
    for group in report.cost_by_group:
        by_model[group.model] = by_model.get(group.model, 0.0) + (group.cost_usd or 0.0)
    # the models something was spent on: after a wrong base URL or a Ctrl-C, "dall-e-3 $0.0000"
    # says nothing the cost line above has not; one model alone is that cost line again
    spent = {m: c for m, c in by_model.items() if c > 0}
    if len(spent) > 1:
        shown = sorted(spent.items(), key=lambda kv: -kv[1])
        line.append(
            "\nby model: " + ", ".join(f"{m} {by_key('cost_usd_total').fmt(c)}" for m, c in shown)
        )
