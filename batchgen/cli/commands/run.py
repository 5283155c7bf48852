"""`batchgen run`: validate, quote, then run every job into a new run directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from batchgen.apiargs import cluster_executor
from batchgen.cli.commands.notify import with_notify
from batchgen.cli.common import (
    EXIT_USAGE,
    UsageError,
    run_config,
)
from batchgen.cli.planvars import too_many_jobs
from batchgen.cli.run import READS
from batchgen.cli.session import ConsoleObserver, make_console, redacted_argv, usage_errors
from batchgen.cli.stdin import StdinError, read_stdin, save_stdin
from batchgen.config import RunConfig
from batchgen.jobs.tally import ASK_ABOVE_JOBS, spec_size
from batchgen.session.start import default_run_dir, start_run


def cmd_run(args: argparse.Namespace) -> int:
    # what a run needs (anyio, aiohttp, pyarrow via the pool and the log) loads now, not when

    console, err = make_console(), make_console(stderr=True)
    try:  # every setting checked (batchgen.config) before a job file or stdin is read
        cfg = run_config(args, reads=READS)
    except UsageError as exc:
        err.print(f"batchgen run: {exc}", markup=False)
        return EXIT_USAGE
    if args.jobfile == "-":
        problem = _jobs_from_stdin(args)
        if problem:
            err.print(f"batchgen run: {problem}", markup=False)
            return EXIT_USAGE
    if refused := too_many_jobs(args.jobfile, args.max_jobs):
        err.print(refused[0], markup=False)
        return EXIT_USAGE
    if args.max_jobs is None and not _big_spec_confirmed(args, err):
        return EXIT_USAGE
    observer = ConsoleObserver(console, err, args)
    if args.from_pilot or args.reuse is not None or args.regenerate_below is not None:
        if args.ray is not None:
            err.print(
                "batchgen run: --ray goes without --from-pilot, --reuse and --regenerate-below",
                markup=False,
            )
            return EXIT_USAGE
        # lazy: loads pandas, pyarrow.compute (resume, regeneration, the library's index):
        # only these flags need them, and a plain run never imports pandas (tests/test_startup.py)
        from batchgen.cli.commands.reusing import run_reusing

        return usage_errors(err, "run", lambda: run_reusing(args, observer))
    return usage_errors(err, "run", lambda: _start(args, observer, cfg))


def _start(args: argparse.Namespace, observer: ConsoleObserver, cfg: RunConfig) -> int:
    cluster = None
    if args.ray is not None:  # the session's plan runs as shards on a Ray cluster
        cluster = cluster_executor(args.ray, cfg)
    return start_run(
        args.jobfile,
        cfg,
        run_dir=args.run_dir,
        observer=with_notify(observer, args),
        argv=redacted_argv(),
        execute_plan=cluster,
    ).exit_code


def _jobs_from_stdin(args: argparse.Namespace) -> str | None:
    """``-``: stdin saved into the run directory (resume reads it again); None when done."""

    try:
        data = read_stdin()
    except StdinError as exc:
        return str(exc)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir("stdin")
    if (run_dir / "run.json").exists():
        return f"{run_dir} already holds a run: pick another --run-dir for the jobs on stdin"
    args.run_dir = str(run_dir)
    args.jobfile = str(save_stdin(run_dir, data))
    return None


def _big_spec_confirmed(args: argparse.Namespace, err: Console) -> bool:
    """A spec of more than ASK_ABOVE_JOBS jobs without --max-jobs: say the count before its
    jobs are made and checked, and ask (--yes goes on; no terminal: refuse, naming the fix)."""
    size = spec_size(args.jobfile)
    if size is None or size[0] <= ASK_ABOVE_JOBS:
        return True
    total, how = size
    said = f"{args.jobfile}: expands to {total:,} jobs ({how})"
    if getattr(args, "yes", False):
        err.print(f"{said}; checking them before the quote", markup=False)
        return True
    if not sys.stdin.isatty():
        err.print(
            f"{said}: more than {ASK_ABOVE_JOBS:,} — pass --max-jobs {total} (or --yes) "
            "to go on, or shrink the matrix",
            markup=False,
        )
        return False
    err.print(f"{said}. Check them all and quote? [y/N] ", markup=False, end="")
    return sys.stdin.readline().strip().lower() in {"y", "yes"}
