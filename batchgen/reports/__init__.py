"""Reports of a run (or two, compared): text (rich), JSON, Markdown and one-file HTML.

build_report(run_dir, *, compare_to=None, thresholds=None, image_checks=True) -> Report
Report.to_json() / .to_text() / .to_markdown() / .to_html() / .write(fmt, out=None)
Report.body: RunReport (one run) or Comparison (batchgen.reports.model: the sections)

build(run_dirs, ...) -> dict; to_json(data); write(data, fmt, out=None, console=None);
default_html_path(data): the same for the report's JSON document as a dict
"""

from batchgen.analyze.model import Comparison, RunReport
from batchgen.reports.output import (
    FORMATS,
    Report,
    build,
    build_report,
    default_html_path,
    to_json,
    write,
)

__all__ = [
    "FORMATS",
    "Comparison",
    "Report",
    "RunReport",
    "build",
    "build_report",
    "default_html_path",
    "to_json",
    "write",
]
