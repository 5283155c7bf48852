"""`batchgen report`: analyze one run (or compare two) and write the report. Its arguments
were checked before this module loaded (``cli/report.refuse``, the parser's ``Body`` check):
a missing or damaged RUN_DIR is refused without the analyzers' imports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from batchgen.analyze.model import Grid
from batchgen.analyze.variables import grid
from batchgen.cli.common import flags_of, output_problem
from batchgen.cli.report import READS, grid_names, refuse
from batchgen.reports import build_report


def cmd_report(args: argparse.Namespace) -> int:
    flags_of(args, READS)  # the parser offers only what is read here
    refused = refuse(args)  # again: a caller may call the body without its parser's Body
    if refused is not None:
        return refused
    problem = output_problem(args.output) if args.output else None
    if problem is not None:  # before the analysis, not after it as a traceback
        print(f"batchgen report: {problem}", file=sys.stderr)
        return 2
    a, *b = args.run_dirs
    report = build_report(a, compare_to=b[0] if b else None, image_checks=not args.no_image_checks)
    if getattr(args, "grid", None):
        try:
            report = report.with_grid(_grid(a, args.grid))
        except ValueError as exc:
            print(f"batchgen report: {exc}", file=sys.stderr)
            return 2
    # into a pipe or a file (`batchgen report RUN | less`, `> report.txt`) 120 columns, as the
    # other commands print (cli/session.make_console), not rich's 80 that folds every table
    console = Console(width=None if sys.stdout.isatty() else 120)
    path = report.write(args.format, args.output, console)
    if path is not None and args.format == "html":
        print(f"report written to {path}", file=sys.stderr)
    return 0


def _grid(run_dir: Path, spec: str) -> Grid:
    rows, cols = grid_names(spec)
    return grid(run_dir, rows, cols)
