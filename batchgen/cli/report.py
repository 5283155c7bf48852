"""`batchgen report RUN_DIR [RUN_DIR2]`: what happened in a run, and what to change next time."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from batchgen.cli.body import Body
from batchgen.runlog import manifest

# the analyzers pull in matplotlib and pyarrow.dataset: the body (cli/commands/report.py)
# imports them, loaded when a report is made, so `batchgen run` does not carry them
# (start-up time and ~100 MB of memory); a missing or damaged RUN_DIR is refused before it
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
    parser.set_defaults(func=Body("report", "cmd_report", check=refuse))


GRID_USAGE = "--grid takes two variables, A,B (e.g. --grid style,product), and one run directory"


def refuse(args: argparse.Namespace) -> int | None:
    """Exit code 2, said on stderr, when the run directories or --grid cannot be reported;
    None when they can."""
    problem = arguments_problem(args)
    if problem is None:
        return None
    # plain stderr, not rich: a message must not be re-wrapped or styled
    print(f"batchgen report: {problem}", file=sys.stderr)
    return 2


def arguments_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the run directories or --grid, before any work."""
    if len(args.run_dirs) > 2:
        return f"give one RUN_DIR, or two to compare (got {len(args.run_dirs)})"
    for d in args.run_dirs:
        # a folder of something else (`batchgen report jobs`) is no empty run either
        path = Path(d)
        if not path.is_dir() or not ((path / "run.json").is_file() or (path / "log").is_dir()):
            return (
                f"{d} is not a run directory; pass the folder holding run.json and log/ "
                "(see `batchgen run --run-dir`)"
            )
    for d in args.run_dirs:
        # a run.json edited into nonsense must not turn into a confident report
        problem = _manifest_problem(Path(d) / "run.json")
        if problem:
            return problem
    if getattr(args, "grid", None) and (len(grid_names(args.grid)) != 2 or len(args.run_dirs) != 1):
        return GRID_USAGE
    return None


def grid_names(spec: str) -> list[str]:
    names = [n.strip() for n in spec.split(",")]
    return names if all(names) else []


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
