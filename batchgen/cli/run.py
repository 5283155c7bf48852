"""``batchgen run JOBFILE``: validate, quote, then run every job into a new run directory.

Exit status: 0 every job succeeded; 1 some jobs failed; 2 bad usage or job file (nothing was
sent); 3 stopped early with jobs pending (auth, quota, budget, interrupt) — `batchgen resume`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from batchgen.cli.batch import add_batch_arguments
from batchgen.cli.common import (
    BATCH_FLAGS,
    EXIT_USAGE,
    JOB_DEFAULT_FLAGS,
    SESSION_FLAGS,
    STORAGE_FLAGS,
    UsageError,
    add_job_defaults,
    add_session_arguments,
    prefer_system_allocator,
    run_config,
)
from batchgen.cli.notifyargs import NOTIFY_FLAGS, add_notify_arguments, with_notify
from batchgen.cli.pilot import APPLY_READS, add_apply_arguments, apply_flags, regenerate_of
from batchgen.cli.score import SCORER_FLAGS, add_scorer_arguments
from batchgen.config import RunConfig
from batchgen.session.outcome import EXIT_STOPPED

# the flags `run` reads (tests/test_cli_help.py: its parser offers exactly these)
READS = (
    frozenset({"jobfile", "max_jobs", "run_dir", "from_pilot", "ray"})
    | JOB_DEFAULT_FLAGS
    | SESSION_FLAGS
    | STORAGE_FLAGS
    | BATCH_FLAGS
    | APPLY_READS
    | SCORER_FLAGS
    | NOTIFY_FLAGS
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a job file of prompts",
        description=__doc__,
        usage="%(prog)s JOBFILE [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "jobfile",
        help="JSONL, OpenAI batch JSONL, CSV, plain text job file or YAML spec; - reads it "
        "from stdin (kept in the run directory as stdin-jobs.<ext>, for resume)",
    )
    parser.add_argument(
        "--max-jobs",
        metavar="N",
        type=int,
        help="refuse (exit 2, nothing sent) a job file or spec of more than N jobs",
    )
    parser.add_argument(
        "--run-dir", help="where images, log and run.json go (default runs/<stem>-<UTC time>)"
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="spread the run over a Ray cluster (pip install 'batchgen[ray]'): shards of the "
        "job file run on its workers under one shared limit; ADDRESS of a running cluster "
        "(ray start --head), else $RAY_ADDRESS, else a cluster of this machine. Put it after "
        "JOBFILE, or write --ray=ADDRESS. See docs/cluster.md",
    )
    add_job_defaults(parser)
    add_session_arguments(parser, resume=False, storage=True)
    add_notify_arguments(parser)

    add_batch_arguments(parser, resume=False)

    add_apply_arguments(parser, from_pilot=True)
    add_scorer_arguments(parser, for_resume=True)
    parser.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    # what a run needs (anyio, aiohttp, pyarrow via the pool and the log) loads now, not when
    # the parser is built for another command
    prefer_system_allocator()

    # lazy: the CLI builds its parser without batchgen.cli.planvars (tests/test_startup.py)
    from batchgen.cli.planvars import too_many_jobs
    from batchgen.cli.session import ConsoleObserver, make_console, usage_errors

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
        return usage_errors(err, "run", lambda: _run_reusing(args, observer))
    return usage_errors(err, "run", lambda: _start(args, observer, cfg))


def _start(args: argparse.Namespace, observer: Any, cfg: RunConfig) -> int:
    # lazy: the CLI builds its parser without batchgen.cli.session (tests/test_startup.py)
    from batchgen.cli.session import redacted_argv
    from batchgen.session.start import start_run

    cluster = None
    if args.ray is not None:  # the session's plan runs as shards on a Ray cluster
        # lazy: Ray (an optional extra) loads only with --ray
        from batchgen.cluster import ClusterRun, refuse

        refuse(cfg)
        cluster = ClusterRun(args.ray or None)
    return start_run(
        args.jobfile,
        cfg,
        run_dir=args.run_dir,
        observer=with_notify(observer, args),
        argv=redacted_argv(),
        execute_plan=cluster,
    ).exit_code


def _run_reusing(args: argparse.Namespace, observer: Any) -> int:
    """--from-pilot (the pilot's setting and images), --reuse (the library), or the
    quality loop right after the run (--regenerate-below)."""
    # lazy: the CLI builds its parser without batchgen.cli.session (tests/test_startup.py)
    from batchgen.cli.session import redacted_argv
    from batchgen.pilot.apply import run_apply
    from batchgen.session.resume import resume_run
    from batchgen.session.start import default_run_dir, start_run

    flags, regen = apply_flags(args), regenerate_of(args)
    if flags.get("via") == "batch":
        msg = "--reuse, --from-pilot and --regenerate-below go with the live API: drop --via batch"
        raise UsageError(msg)
    if args.from_pilot:
        return int(
            run_apply(
                args.jobfile,
                args.from_pilot,
                flags,
                run_dir=args.run_dir,
                observer=observer,
                say=observer.say,
                argv=redacted_argv(),
                regenerate=regen,
                pick=args.setting,
            ).exit_code
        )
    target = args.run_dir or default_run_dir(args.jobfile)
    outcome = start_run(
        args.jobfile,
        RunConfig.build(flags),
        run_dir=target,
        observer=observer,
        argv=redacted_argv(),
    )
    if regen is None or outcome.exit_code == EXIT_STOPPED:
        return int(outcome.exit_code)
    flags.pop("reuse", None)
    return int(
        resume_run(
            target, flags, observer=observer, argv=redacted_argv(), regenerate=regen
        ).exit_code
    )


def _jobs_from_stdin(args: argparse.Namespace) -> str | None:
    """``-``: stdin saved into the run directory (resume reads it again); None when done."""

    # lazy: the CLI builds its parser without batchgen.cli.stdin (tests/test_startup.py)
    from batchgen.cli.stdin import StdinError, read_stdin, save_stdin
    from batchgen.session.start import default_run_dir

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


def _big_spec_confirmed(args: argparse.Namespace, err: Any) -> bool:
    """A spec of more than ASK_ABOVE_JOBS jobs without --max-jobs: say the count before its
    jobs are made and checked, and ask (--yes goes on; no terminal: refuse, naming the fix)."""
    # lazy: the CLI builds its parser without batchgen.jobs.tally (tests/test_startup.py)
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
        err.print(
            f"{said}: more than {ASK_ABOVE_JOBS:,} — pass --max-jobs {total} (or --yes) "
            "to go on, or shrink the matrix",
            markup=False,
        )
        return False
    err.print(f"{said}. Check them all and quote? [y/N] ", markup=False, end="")
    return sys.stdin.readline().strip().lower() in {"y", "yes"}
