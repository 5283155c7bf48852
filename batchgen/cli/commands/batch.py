"""`batchgen collect` and `batchgen cancel`: a Batch API run's results, or its end."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from batchgen.cli.batch import CANCEL_READS, COLLECT_READS
from batchgen.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    flags_of,
)
from batchgen.cli.session import ConsoleObserver, make_console, redacted_argv, usage_errors
from batchgen.errors import AttemptError
from batchgen.session.batchmode import cancel_batches
from batchgen.session.resume import resume_run


def cmd_collect(args: argparse.Namespace) -> int:
    flags = {**flags_of(args, COLLECT_READS), "via": "batch", "collect_only": True}
    console, err = make_console(), make_console(stderr=True)
    observer = ConsoleObserver(console, err, args)
    return usage_errors(
        err,
        "collect",
        lambda: (
            resume_run(
                args.run_dir,
                flags,
                observer=observer,
                argv=redacted_argv(),
            ).exit_code
        ),
    )


def cmd_cancel(args: argparse.Namespace) -> int:
    console, err = make_console(), make_console(stderr=True)
    try:
        flags_of(args, CANCEL_READS)  # the parser offers only what is read here
        n = cancel_batches(
            args.run_dir, args.base_url, args.api_key_env, ConsoleObserver(console, err, args)
        )
    except (UsageError, AttemptError) as exc:
        err.print(f"batchgen cancel: {exc}", markup=False)
        return EXIT_USAGE
    if n is None:
        console.print("this run used the in-process simulator: its batches ended with it")
        return EXIT_OK
    path = shlex.quote(str(Path(args.run_dir)))
    if n == 0:
        console.print(
            f"nothing to cancel: no batch of {path} is open at the provider (each was "
            f"cancelled before or has ended). `batchgen collect {path}` picks up what "
            f"finished; `batchgen resume {path}` sends the rest.",
            markup=False,
        )
        return EXIT_OK
    console.print(
        f"cancelled {n} batch(es). What finished before the cancel is collected by "
        f"`batchgen collect {path}`; `batchgen resume {path}` then sends the rest."
    )
    return EXIT_OK
