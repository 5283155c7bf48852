"""``batchgen jobs RUN_DIR --status failed|pending|ok``: the matching jobs as a JSONL job file,
to re-drive them elsewhere or inspect them (each line: id + the request body as sent)."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from typing import Any

from batchgen.cli.common import EXIT_OK, EXIT_USAGE, flags_of
from batchgen.runlog.export import STATUSES, export_jobs
from batchgen.runlog.rundir import RunDirError

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
    parser.set_defaults(func=cmd_jobs)


def cmd_jobs(args: argparse.Namespace) -> int:
    flags_of(args, READS)  # the parser offers only what is read here
    try:
        lines = export_jobs(args.run_dir, args.status)
    except RunDirError as exc:
        print(f"batchgen jobs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    count = 0
    with (
        open(args.output, "w", encoding="utf-8") if args.output else nullcontext(sys.stdout) as out
    ):
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            count += 1
    print(
        f"{count} {args.status} job(s)" + (f" written to {args.output}" if args.output else ""),
        file=sys.stderr,
    )
    return EXIT_OK
