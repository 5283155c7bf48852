"""`batchgen runs`: the runs under a folder, newest first."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from batchgen.cli.common import flags_of
from batchgen.cli.runs import READS
from batchgen.numbers import money, usd
from batchgen.runlog.listing import RunSummary, find_runs, summarize


def cmd_runs(args: argparse.Namespace) -> int:
    flags_of(args, READS)  # the parser offers only what is read here

    folder = Path(args.folder)
    if not folder.is_dir():
        print(
            f"batchgen runs: {folder} is not a folder; pass where your run directories are "
            "(`batchgen run --run-dir` chose them; default runs/)",
            file=sys.stderr,
        )
        return 2
    runs = [summarize(p) for p in find_runs(folder)]
    if args.output_format == "json":
        doc = [
            {
                "path": str(r.path),
                "name": r.name,
                "created_at": r.created_at,
                "state": r.state,
                "jobs": r.jobs,
                "succeeded": r.succeeded,
                "failed": r.failed,
                "pending": r.pending,
                "cost_usd": money(r.cost_usd),
                "sessions": r.sessions,
            }
            for r in runs
        ]
        print(json.dumps(doc, indent=2))
        return 0
    if not runs:
        print(f"no run directories under {folder} (a run directory holds run.json and log/)")
        return 0
    _print_table(runs)
    return 0


def _print_table(runs: list[RunSummary]) -> None:
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("run", overflow="fold")
    table.add_column("created")
    table.add_column("state", overflow="fold")
    for col in ("jobs", "ok", "failed", "pending", "cost"):
        table.add_column(col, justify="right")
    for r in runs:
        when = r.created_at
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(when)) if when else "-"
        style = {"running": "cyan", "completed": "green"}.get(r.state, "yellow")
        table.add_row(
            Text(str(r.path)),
            created,
            Text(r.state, style=style),
            "-" if r.jobs is None else f"{r.jobs:,}",
            f"{r.succeeded:,}",
            f"{r.failed:,}",
            "-" if r.pending is None else f"{r.pending:,}",
            usd(r.cost_usd),
        )
    console.print(table)
