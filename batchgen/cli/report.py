"""`batchgen report RUN_DIR [RUN_DIR2]`: what happened in a run, and what to change next time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.cli.body import Body

if TYPE_CHECKING:
    pass

# the analyzers pull in matplotlib and pyarrow.dataset: imported when a report is made, so
# `batchgen run` does not carry them (start-up time and ~100 MB of memory)
FORMATS = ("text", "json", "html", "md")
READS = frozenset({"run_dirs", "format", "output", "grid", "no_image_checks"})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="report a run: success, latency, throughput, cost, errors, recommendations",
        description="Report one run, or compare two (B relative to A). Works on finished, "
        "stopped, killed and still-running runs.",
    )
    parser.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="the run directory; give a second one to compare",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text (terminal, default), json, html (RUN_DIR/report.html), md",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="write to this file instead of the terminal / RUN_DIR/report.html",
    )
    parser.add_argument(
        "--grid",
        metavar="A,B",
        help="a spec run's images laid out over two variables (rows A, columns B), failed "
        "cells marked; in the HTML and JSON reports",
    )
    parser.add_argument(
        "--no-image-checks",
        action="store_true",
        help="skip decoding the saved images (fast on huge runs)",
    )
    parser.set_defaults(func=Body("report", "cmd_report"))


GRID_USAGE = "--grid takes two variables, A,B (e.g. --grid style,product), and one run directory"
