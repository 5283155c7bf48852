"""``batchgen jobs RUN_DIR --status failed|pending|ok``: the matching jobs as a JSONL job file,
to re-drive them elsewhere or inspect them (each line: id + the request body as sent)."""

from __future__ import annotations

from typing import Any

from batchgen.cli.body import Body
from batchgen.runlog.statuses import STATUSES

READS = frozenset({"run_dir", "status", "output"})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "jobs",
        help="export a run's ok / failed / pending jobs as a JSONL job file",
        description=__doc__,
    )
    parser.add_argument("run_dir", help="the run directory (holds run.json)")
    parser.add_argument(
        "--status",
        choices=STATUSES,
        required=True,
        help="pending = not ok and not failed (never sent, stopped, cancelled)",
    )
    parser.add_argument("-o", "--output", help="file to write (default: standard output)")
    parser.set_defaults(func=Body("jobs", "cmd_jobs"))
