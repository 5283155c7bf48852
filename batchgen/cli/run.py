"""``batchgen run JOBFILE``: validate, quote, then run every job into a new run directory.

Exit status: 0 every job succeeded; 1 some jobs failed; 2 bad usage or job file (nothing was
sent); 3 stopped early with jobs pending (auth, quota, budget, interrupt) — `batchgen resume`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from batchgen.cli.common import (
    EXIT_USAGE,
    add_job_defaults,
    add_session_arguments,
    prefer_system_allocator,
    run_config,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a job file of prompts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "jobfile", help="JSONL, OpenAI batch JSONL, CSV, plain text job file or YAML spec"
    )
    parser.add_argument(
        "--max-jobs", metavar="N", type=int,
        help="refuse (exit 2, nothing sent) a job file or spec of more than N jobs",
    )  # fmt: skip
    parser.add_argument(
        "--run-dir", help="where images, log and run.json go (default runs/<stem>-<UTC time>)"
    )
    add_job_defaults(parser)
    add_session_arguments(parser, resume=False)
    from batchgen.cli.batch import add_batch_arguments

    add_batch_arguments(parser, resume=False)
    parser.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    # what a run needs (anyio, aiohttp, pyarrow via the pool and the log) loads now, not when
    # the parser is built for another command
    prefer_system_allocator()
    from batchgen.cli.planvars import too_many_jobs
    from batchgen.cli.session import ConsoleObserver, make_console, redacted_argv, usage_errors
    from batchgen.session.start import start_run

    console, err = make_console(), make_console(stderr=True)
    if refused := too_many_jobs(args.jobfile, args.max_jobs):
        err.print(refused[0], markup=False)
        return EXIT_USAGE
    if args.max_jobs is None and not _big_spec_confirmed(args, err):
        return EXIT_USAGE
    observer = ConsoleObserver(console, err, args)
    return usage_errors(err, "run", lambda: start_run(
        args.jobfile, run_config(args), run_dir=args.run_dir, observer=observer,
        argv=redacted_argv(),
    ).exit_code)  # fmt: skip


def _big_spec_confirmed(args: argparse.Namespace, err: Any) -> bool:
    """A spec of more than ASK_ABOVE_JOBS jobs without --max-jobs: say the count before its
    jobs are made and checked, and ask (--yes goes on; no terminal: refuse, naming the fix)."""
    from batchgen.jobs.tally import ASK_ABOVE_JOBS, spec_size

    size = spec_size(args.jobfile)
    if size is None or size[0] <= ASK_ABOVE_JOBS:
        return True
    total, how = size
    said = f"{args.jobfile}: expands to {total:,} jobs ({how})"
    if getattr(args, "yes", False):
        err.print(f"{said}; checking them before the quote", markup=False)
        return True
    if not sys.stdin.isatty():
        err.print(f"{said}: more than {ASK_ABOVE_JOBS:,} — pass --max-jobs {total} (or --yes) "
                  "to go on, or shrink the matrix", markup=False)  # fmt: skip
        return False
    err.print(f"{said}. Check them all and quote? [y/N] ", markup=False, end="")
    return sys.stdin.readline().strip().lower() in {"y", "yes"}
