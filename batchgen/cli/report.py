"""`batchgen report RUN_DIR [RUN_DIR2]`: what happened in a run, and what to change next time."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from batchgen.cli.common import flags_of, prefer_system_allocator
from batchgen.runlog import manifest

if TYPE_CHECKING:
    from batchgen.analyze.model import Grid

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
    parser.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    # a 1M-row log peaked at ~765 MB RSS with Arrow's default allocator, ~660 MB with this
    prefer_system_allocator()

    flags_of(args, READS)  # the parser offers only what is read here
    problem = _arguments_problem(args)
    if problem:
        # plain stderr, not rich: a message must not be re-wrapped or styled
        print(f"batchgen report: {problem}", file=sys.stderr)
        return 2
    # lazy: the CLI builds its parser without batchgen.reports (tests/test_startup.py)
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


GRID_USAGE = "--grid takes two variables, A,B (e.g. --grid style,product), and one run directory"


def _grid_names(spec: str) -> list[str]:
    names = [n.strip() for n in spec.split(",")]
    return names if all(names) else []


def _grid(run_dir: Path, spec: str) -> Grid:
    # lazy: the CLI builds its parser without batchgen.analyze.variables (tests/test_startup.py)
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


def print_run_summary(run_dir: Path | str, console: Console) -> None:
    """The short summary `batchgen run` prints at the end (no image checks: it must be quick).
    The resume command is left to the ending's "to finish the rest" line: printed once."""

    # lazy: the CLI builds its parser without batchgen.reports (tests/test_startup.py)
    from batchgen.reports import build_report
    from batchgen.reports.text import summary

    run = build_report(run_dir, image_checks=False).run
    advice = tuple(r for r in run.recommendations if r.kind != "pending")
    console.print(summary(dataclasses.replace(run, recommendations=advice)))


def main(argv: list[str] | None = None) -> int:
    """Run `report` alone (python -m batchgen.cli.report), before the CLI's main wires it."""
    parser = argparse.ArgumentParser(prog="batchgen")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
