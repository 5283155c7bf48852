"""`batchgen resume`: finish the rest of a run, or regenerate its weakest images."""

from __future__ import annotations

import argparse

from batchgen.apiargs import cluster_executor
from batchgen.cli.commands.notify import with_notify
from batchgen.cli.common import (
    flags_of,
)
from batchgen.cli.resume import READS
from batchgen.cli.session import ConsoleObserver, make_console, redacted_argv, usage_errors
from batchgen.session.regenerate import Regenerate
from batchgen.session.resume import resume_run


def cmd_resume(args: argparse.Namespace) -> int:

    console, err = make_console(), make_console(stderr=True)
    below = getattr(args, "regenerate_below", None)
    regen = None if below is None else Regenerate(float(below), int(args.max_rounds))
    observer = ConsoleObserver(console, err, args)
    cluster = None
    if args.ray is not None:  # the rest runs as shards on a Ray cluster
        cluster = cluster_executor(args.ray, rest=True)
    return usage_errors(
        err,
        "resume",
        lambda: (
            resume_run(
                args.run_dir,
                flags_of(args, READS),
                observer=with_notify(observer, args),
                argv=redacted_argv(),
                regenerate=regen,
                execute_plan=cluster,
            ).exit_code
        ),
    )
