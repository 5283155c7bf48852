"""Build the report data for one run or a comparison, and write it in the chosen format."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from batchgen.analyze import DEFAULT_THRESHOLDS, Thresholds, analyze_run
from batchgen.reports.figures import compare
from batchgen.reports.html import render_compare_html, render_html
from batchgen.reports.markdown import render_compare_markdown, render_markdown
from batchgen.reports.text import render_compare_text, render_text

FORMATS = ("text", "json", "html", "md")


def build(
    run_dirs: Sequence[Path | str],
    *,
    image_checks: bool = True,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> dict[str, Any]:
    """One run's report, or, for two run directories, their comparison (B relative to A)."""
    if len(run_dirs) not in (1, 2):
        msg = f"report takes one run directory or two to compare, got {len(run_dirs)}"
        raise ValueError(msg)
    reports = [analyze_run(d, image_checks=image_checks, thresholds=thresholds) for d in run_dirs]
    return reports[0] if len(reports) == 1 else compare(*reports)


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: a figure that cannot be computed is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(_finite(data), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def default_html_path(data: dict[str, Any]) -> Path:
    first = data["runs"][0] if data.get("compare") else data
    return Path(first["run_dir"]) / "report.html"


def write(
    data: dict[str, Any], fmt: str, out: Path | str | None = None, console: Console | None = None
) -> Path | None:
    """Render ``data`` as ``fmt``; write it to ``out`` (html defaults to RUN_DIR/report.html)
    or print it.  Returns the file written, if any."""
    if fmt not in FORMATS:
        msg = f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}"
        raise ValueError(msg)
    is_cmp = bool(data.get("compare"))
    if fmt == "html":
        path = Path(out) if out else default_html_path(data)
        page = (render_compare_html if is_cmp else render_html)(data, path)
        path.write_text(page, encoding="utf-8")
        return path
    if fmt == "text":
        if out:
            with open(out, "w", encoding="utf-8") as fh:
                _text(data, Console(file=fh, width=140, no_color=True), is_cmp)
            return Path(out)
        _text(data, console or Console(), is_cmp)
        return None
    text = (
        to_json(data)
        if fmt == "json"
        else (render_compare_markdown(data) if is_cmp else render_markdown(data))
    )
    if out:
        Path(out).write_text(text, encoding="utf-8")
        return Path(out)
    # JSON and Markdown are data: written as is, never wrapped or styled by rich
    target = console.file if console is not None else sys.stdout
    target.write(text)
    target.flush()
    return None


def _text(data: dict[str, Any], console: Console, is_cmp: bool) -> None:
    (render_compare_text if is_cmp else render_text)(data, console)
