"""Reports of a run (or two, compared): text (rich), JSON, Markdown and one-file HTML.

build(run_dirs, *, image_checks=True, thresholds=) -> dict     one report, or a comparison
to_json(data) -> str                                          stable keys, schema.json
write(data, fmt, out=None, console=None) -> Path | None        render and write/print
default_html_path(data) -> Path                                RUN_DIR/report.html
"""

from batchgen.reports.output import FORMATS, build, default_html_path, to_json, write

__all__ = ["FORMATS", "build", "default_html_path", "to_json", "write"]
