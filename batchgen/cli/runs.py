"""``batchgen runs [FOLDER]``: the run directories under FOLDER (default runs/) with the state
of each (running, completed, failed jobs, stopped ...), its job counts and what it cost.
Reads only: safe beside a running batchgen."""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.cli.body import Body

READS = frozenset({"folder", "output_format"})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "runs",
        help="list the run directories under a folder and the state of each",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "folder",
        nargs="?",
        default="runs",
        help="where the runs are (default runs/); its run directories and those one level down",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        dest="output_format",
        help="text (default) or json (one object per run)",
    )
    parser.set_defaults(func=Body("runs", "cmd_runs"))
