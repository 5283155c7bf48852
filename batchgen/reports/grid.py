"""HTML sections of spec runs and edits: the by-variable table, input → output pairs, and the
image grid over two variables (``batchgen report RUN --format html --grid style,product``).

Each renderer reads only the report (``by_variable``, ``edit_pairs``, ``grid``); every
value is escaped; thumbnails are inlined (the page works offline)."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchgen.analyze.model import RunReport
from batchgen.reports.figures import pct, secs, usd
from batchgen.reports.thumbs import picture

GRID_CSS = """
.grid td{vertical-align:top;min-width:120px}
.grid th{white-space:nowrap;overflow-wrap:normal}
.grid .cell{display:flex;flex-wrap:wrap;gap:6px}
.grid figure{margin:0;width:120px}
.grid figcaption{font-size:11px;color:#4b5563;overflow-wrap:anywhere;line-height:1.25}
.grid img,.pairs img{max-width:120px;max-height:120px;border-radius:4px}
.grid .failed{background:#fde8e8;color:#9b1c1c;padding:6px;border-radius:4px;font-size:.85em}
.grid .pending{background:#f3f4f6;color:#555;padding:6px;border-radius:4px;font-size:.85em}
.pairs td{vertical-align:middle}
"""

Escape = Callable[[Any], str]
Thumb = Callable[[Path], "str | None"]


def by_variable_html(r: RunReport, e: Escape, table: Callable[..., str]) -> str:
    rows = [
        [
            e(name),
            e(x.value),
            f"{x.jobs:,}",
            f"{x.succeeded:,}",
            f"{x.failed:,}",
            f"{x.pending:,}",
            e(pct(x.success_rate)),
            e(secs(x.latency_p50_s)),
            e(secs(x.latency_p95_s)),
            e(usd(x.cost_usd)),
        ]
        for name, values in r.by_variable.items()
        for x in values
    ]
    if not rows:
        return ""
    head = ["variable", "value", "jobs", "ok", "failed", "pending", "success", "p50", "p95", "cost"]
    return "<h2>By variable</h2>" + table(head, rows, {2, 3, 4, 5, 6, 7, 8, 9})


def _output(run_dir: Path, logged: str, out_dir: Path, e: Escape, alt: str) -> str:
    """An image a log row names (a file of the run, or an object of --images-to)."""
    data, href = picture(run_dir, logged, out_dir)
    pic = f'<img loading="lazy" src="{data}" alt="{e(alt)}">' if data else e(Path(logged).name)
    return f'<a href="{e(href)}">{pic}</a>'


def _img(path: Path, out_dir: Path, thumb: Thumb, e: Escape, alt: str) -> str:
    data = thumb(path)
    href = urllib.parse.quote(os.path.relpath(path.resolve(), out_dir.resolve()))
    pic = f'<img loading="lazy" src="{data}" alt="{e(alt)}">' if data else e(path.name)
    return f'<a href="{e(href)}">{pic}</a>'


def edit_pairs_html(r: RunReport, out_dir: Path, e: Escape, thumb: Thumb) -> str:
    pairs = r.edit_pairs
    if not pairs:
        return ""
    run_dir = Path(r.run_dir)
    rows = []
    for p in pairs:
        ins = "".join(
            _img(Path(ref), out_dir, thumb, e, "input") if Path(ref).is_file() else e(ref)
            for ref in p.inputs
        )
        outs = "".join(_output(run_dir, o, out_dir, e, "output") for o in p.outputs)
        if not outs:
            outs = f'<span class="muted">{e(p.state)}</span>'
        rows.append(f"<tr><td>{e(p.job_id)}</td><td>{ins}</td><td>→</td><td>{outs}</td></tr>")
    return (
        "<h2>Edits: input → output</h2>"
        '<table class="pairs"><thead><tr><th>job</th><th>input</th><th></th><th>output</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def grid_html(r: RunReport, out_dir: Path, e: Escape, thumb: Thumb) -> str:
    g = r.grid
    if not g:
        return ""
    run_dir = Path(r.run_dir)
    cells = {(c.row, c.col): c.jobs for c in g.cells}
    head = "".join(f"<th>{e(g.cols)}={e(v)}</th>" for v in g.col_values)
    body = []
    for rv in g.row_values:
        tds = []
        for cv in g.col_values:
            jobs = cells.get((rv, cv), ())
            parts = []
            for j in jobs:
                # every image says which job of the cell it is (the other variables, the
                # repeat, the image's number when a job made several); the job id on hover
                label = j.label if len(jobs) > 1 else ""
                if j.state == "succeeded":
                    for k, p in enumerate(j.images, 1):
                        caption = " · ".join(
                            x for x in (label, f"image {k}" if len(j.images) > 1 else "") if x
                        )
                        parts.append(
                            f'<figure title="{e(j.job_id)}">'
                            f"{_output(run_dir, p, out_dir, e, caption or j.job_id)}"
                            + (f"<figcaption>{e(caption)}</figcaption>" if caption else "")
                            + "</figure>"
                        )
                else:
                    why = f": {j.error_class}" if j.error_class else ""
                    parts.append(
                        f'<div class="{e(j.state)}" title="{e(j.job_id)}">'
                        f"{e(j.state)}{e(why)}" + (f"<br>{e(label)}" if label else "") + "</div>"
                    )
            state = "failed" if any(j.state == "failed" for j in jobs) else "ok"
            tds.append(f'<td data-state="{state}"><div class="cell">{"".join(parts)}</div></td>')
        body.append(f"<tr><th>{e(g.rows)}={e(rv)}</th>{''.join(tds)}</tr>")
    return (
        f"<h2>Grid: {e(g.rows)} × {e(g.cols)}</h2>"
        f'<div class="wide"><table class="grid"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
