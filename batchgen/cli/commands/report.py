"""`batchgen report`: analyze one run (or compare two) and write the report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from batchgen.cli.common import flags_of
from batchgen.cli.report import GRID_USAGE, READS
from batchgen.runlog import manifest

if TYPE_CHECKING:
    from batchgen.analyze.model import Grid


def cmd_report(args: argparse.Namespace) -> int:
    flags_of(args, READS)  # the parser offers only what is read here
    problem = _arguments_problem(args)
    if problem:
        # plain stderr, not rich: a message must not be re-wrapped or styled
        print(f"batchgen report: {problem}", file=sys.stderr)
        return 2
    # lazy: loads pandas, matplotlib, pyarrow.compute (the analyzers): a missing or damaged
    # RUN_DIR is refused without them, in a fifth of the time
    from batchgen.reports import build_report

    a, *b = args.run_dirs
    report = build_report(a, compare_to=b[0] if b else None, image_checks=not args.no_image_checks)
    if getattr(args, "grid", None):
        try:
            report = report.with_grid(_grid(a, args.grid))
        except ValueError as exc:
            print(f"batchgen report: {exc}", file=sys.stderr)
            return 2
    path = report.write(args.format, args.output, Console())
    if path is not None and args.format == "html":
        print(f"report written to {path}", file=sys.stderr)
    return 0


def _arguments_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the run directories or --grid, before any work."""
    if len(args.run_dirs) > 2:
        return f"give one RUN_DIR, or two to compare (got {len(args.run_dirs)})"
    for d in args.run_dirs:
        if not Path(d).is_dir():
            return (
                f"{d} is not a run directory; pass the folder holding run.json and log/ "
                "(see `batchgen run --run-dir`)"
            )
    for d in args.run_dirs:
        # a run.json edited into nonsense must not turn into a confident report
        problem = _manifest_problem(Path(d) / "run.json")
        if problem:
            return problem
    if getattr(args, "grid", None) and (
        len(_grid_names(args.grid)) != 2 or len(args.run_dirs) != 1
    ):
        return GRID_USAGE
    return None


def _grid_names(spec: str) -> list[str]:
    names = [n.strip() for n in spec.split(",")]
    return names if all(names) else []


def _grid(run_dir: Path, spec: str) -> Grid:
    # lazy: loads pandas, pyarrow.compute, as build_report does (cmd_report says why)
    from batchgen.analyze.variables import grid

    rows, cols = _grid_names(spec)
    return grid(run_dir, rows, cols)


def _manifest_problem(path: Path) -> str | None:
    """What is wrong with run.json, if it exists (a bare log directory has none)."""

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return f"{path}: not valid JSON ({exc}); restore it from a backup or fix it by hand"
    found = manifest.problems(doc, None, strict=False)
    if not found:
        return None
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return f"{path}: {found[0]}{more}; run.json was edited or damaged: fix the key by hand"
