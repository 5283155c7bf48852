"""The report of a run (or two, compared) as one typed value, and its four formats.

    report = build_report("runs/x")                  # a Report (build_report(a, compare_to=b))
    report.to_json(); report.to_markdown(); report.to_html(); report.to_text()
    report.write("html")                             # RUN_DIR/report.html

``build``/``write``/``to_json`` keep the older dict-in, dict-out calls working: the dict is the
JSON document (``schema.json``), read back into the model before it is rendered.
"""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from batchgen.analyze import DEFAULT_THRESHOLDS, Thresholds, analyze_run
from batchgen.analyze.model import Comparison, Grid, RunReport, section_from_dict
from batchgen.numbers import for_json
from batchgen.reports.figures import compare
from batchgen.reports.markdown import render_compare_markdown, render_markdown
from batchgen.reports.text import render_compare_text, render_text

FORMATS = ("text", "json", "html", "md")


@dataclass(frozen=True, slots=True)
class Report:
    """One run's report (``body`` a RunReport) or two runs compared (a Comparison)."""

    body: RunReport | Comparison

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Report:
        """The report a JSON document holds (``--format json``, or ``to_dict()``)."""
        return cls(section_from_dict(doc))

    @property
    def runs(self) -> tuple[RunReport, ...]:
        return self.body.runs if isinstance(self.body, Comparison) else (self.body,)

    @property
    def run(self) -> RunReport:
        """The one run's report (ValueError for a comparison: use ``runs``)."""
        if isinstance(self.body, Comparison):
            msg = "this report compares two runs: read report.runs"
            raise ValueError(msg)
        return self.body

    @property
    def is_comparison(self) -> bool:
        return isinstance(self.body, Comparison)

    def to_dict(self) -> dict[str, Any]:
        return self.body.to_dict()

    def to_json(self) -> str:
        """The JSON document, stable keys (``batchgen/reports/schema.json``); NaN → null."""
        doc = for_json(_finite(self.to_dict()))
        return json.dumps(doc, indent=2, allow_nan=False, ensure_ascii=False) + "\n"

    def to_markdown(self) -> str:
        body = self.body
        return (
            render_compare_markdown(body) if isinstance(body, Comparison) else render_markdown(body)
        )

    def to_html(self, out_path: Path | str | None = None) -> str:
        """The one-file page; image links are relative to ``out_path`` (RUN_DIR/report.html)."""
        # lazy: the page's charts import matplotlib (~0.2 s); a terminal, JSON or Markdown
        # report draws none
        from batchgen.reports.html import render_compare_html, render_html

        path = Path(out_path) if out_path else self.html_path()
        body = self.body
        if isinstance(body, Comparison):
            return render_compare_html(body, path)
        return render_html(body, path)

    def to_text(self, width: int = 140) -> str:
        """The terminal report as plain text (no colour)."""
        buf = io.StringIO()
        self.print(Console(file=buf, width=width, no_color=True))
        return buf.getvalue()

    def print(self, console: Console | None = None) -> None:
        """The terminal report (rich tables) on ``console`` (stdout by default)."""
        console = console or Console()
        body = self.body
        if isinstance(body, Comparison):
            render_compare_text(body, console)
        else:
            render_text(body, console)

    def html_path(self) -> Path:
        return Path(self.runs[0].run_dir) / "report.html"

    def with_grid(self, grid: Grid | Mapping[str, Any]) -> Report:
        """The report with a spec run's ``--grid`` (``analyze.variables.grid``) added."""
        section = grid if isinstance(grid, Grid) else Grid.from_dict(grid)
        return Report(replace(self.run, grid=section))

    def write(
        self, fmt: str, out: Path | str | None = None, console: Console | None = None
    ) -> Path | None:
        """Render as ``fmt``; write it to ``out`` (html defaults to RUN_DIR/report.html) or
        print it. Returns the file written, if any."""
        if fmt not in FORMATS:
            msg = f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}"
            raise ValueError(msg)
        if fmt == "html":
            path = Path(out) if out else self.html_path()
            path.write_text(self.to_html(path), encoding="utf-8")
            return path
        if fmt == "text":
            if out:
                with open(out, "w", encoding="utf-8") as fh:
                    self.print(Console(file=fh, width=140, no_color=True))
                return Path(out)
            self.print(console)
            return None
        text = self.to_json() if fmt == "json" else self.to_markdown()
        if out:
            Path(out).write_text(text, encoding="utf-8")
            return Path(out)
        # JSON and Markdown are data: written as is, never wrapped or styled by rich
        target = console.file if console is not None else sys.stdout
        target.write(text)
        target.flush()
        return None


def build_report(
    run_dir: Path | str,
    *,
    compare_to: Path | str | None = None,
    thresholds: Thresholds | None = None,
    image_checks: bool = True,
) -> Report:
    """The report of ``run_dir``; with ``compare_to``, the two runs compared (that one as B,
    relative to ``run_dir`` as A)."""
    limits = thresholds or DEFAULT_THRESHOLDS
    dirs = [run_dir] if compare_to is None else [run_dir, compare_to]
    runs = [analyze_run(d, image_checks=image_checks, thresholds=limits) for d in dirs]
    return Report(runs[0] if len(runs) == 1 else compare(runs[0], runs[1]))


# ---- the dict-in, dict-out calls ---------------------------------------------------------


def build(
    run_dirs: Sequence[Path | str],
    *,
    image_checks: bool = True,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> dict[str, Any]:
    """One run's report, or, for two run directories, their comparison (B relative to A), as
    the JSON document's dict."""
    if len(run_dirs) not in (1, 2):
        msg = f"report takes one run directory or two to compare, got {len(run_dirs)}"
        raise ValueError(msg)
    other = run_dirs[1] if len(run_dirs) == 2 else None
    report = build_report(
        run_dirs[0], compare_to=other, thresholds=thresholds, image_checks=image_checks
    )
    return report.to_dict()


def _report(data: Report | RunReport | Comparison | Mapping[str, Any]) -> Report:
    if isinstance(data, Report):
        return data
    if isinstance(data, RunReport | Comparison):
        return Report(data)
    return Report.from_dict(data)


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: a figure that cannot be computed is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json(data: Report | RunReport | Comparison | Mapping[str, Any]) -> str:
    return _report(data).to_json()


def default_html_path(data: Report | Mapping[str, Any]) -> Path:
    return _report(data).html_path()


def write(
    data: Report | Mapping[str, Any],
    fmt: str,
    out: Path | str | None = None,
    console: Console | None = None,
) -> Path | None:
    """Render ``data`` (a Report or its dict) as ``fmt``; see ``Report.write``."""
    return _report(data).write(fmt, out, console)
