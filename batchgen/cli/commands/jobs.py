"""`batchgen jobs`: the run's jobs by status, as the job file's lines."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path

from batchgen.cli.common import EXIT_OK, EXIT_USAGE, flags_of, output_problem
from batchgen.cli.export import READS
from batchgen.numbers import plural
from batchgen.runlog.export import export_jobs
from batchgen.runlog.rundir import RunDirError


def cmd_jobs(args: argparse.Namespace) -> int:
    flags_of(args, READS)  # the parser offers only what is read here
    if Path(args.run_dir).exists() and not Path(args.run_dir).is_dir():  # was a traceback
        print(
            f"batchgen jobs: {args.run_dir} is a file, not a run directory; pass the folder "
            "holding run.json (see `batchgen runs`)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        lines = export_jobs(args.run_dir, args.status)
    except RunDirError as exc:
        print(f"batchgen jobs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problem = output_problem(args.output) if args.output else None
    if problem is not None:
        print(f"batchgen jobs: {problem}", file=sys.stderr)
        return EXIT_USAGE
    count = 0
    with (
        open(args.output, "w", encoding="utf-8") if args.output else nullcontext(sys.stdout) as out
    ):
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            count += 1
    print(
        plural(count, f"{args.status} job") + (f" written to {args.output}" if args.output else ""),
        file=sys.stderr,
    )
    return EXIT_OK
