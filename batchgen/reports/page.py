"""The HTML report's building blocks: the page with its inline CSS, escaping (``e``), the
rating badge and the table. Every piece of run data goes through ``e()`` (``html.escape``)."""

from __future__ import annotations

import html
from collections.abc import Set as AbstractSet
from typing import Any

from batchgen.reports.grid import GRID_CSS

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


def html_page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{e(title)}</title><style>{CSS}{GRID_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def badge(rating: str | None) -> str:
    return f'<span class="badge {e(rating or "na")}">{e(rating or "n/a")}</span>'


def html_table(
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
