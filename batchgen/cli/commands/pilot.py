"""`batchgen pilot` and what `run --from-pilot/--reuse/--regenerate-below` share."""

from __future__ import annotations

import argparse

from batchgen.cli.commands.reusing import apply_flags, regenerate_of
from batchgen.cli.common import (
    EXIT_STOPPED,
    flags_of,
)
from batchgen.cli.pilot import READS
from batchgen.cli.session import ConsoleObserver, make_console, redacted_argv, usage_errors
from batchgen.pilot.apply import run_apply
from batchgen.pilot.run import run_pilot


def cmd_pilot(args: argparse.Namespace) -> int:

    console, err = make_console(), make_console(stderr=True)
    observer = ConsoleObserver(console, err, args)

    def say(text: str) -> None:
        observer.say(text)

    def go() -> int:
        flags = {
            k: v
            for k, v in flags_of(args, READS).items()
            if k
            not in (
                "jobfile",
                "run_dir",
                "apply",
                "apply_run_dir",
                "setting",
                "regenerate_below",
                "max_rounds",
                "reuse",
                "reuse_bar",
            )
        }
        outcome = run_pilot(
            args.jobfile,
            flags,
            run_dir=args.run_dir,
            observer=observer,
            say=say,
            argv=redacted_argv(),
        )
        if not args.apply or outcome.exit_code == EXIT_STOPPED:
            if outcome.result is not None and outcome.result.get("chosen"):
                say(f"next: batchgen run {args.jobfile} --from-pilot {outcome.run_dir}")
            return outcome.exit_code
        applied = run_apply(
            args.jobfile,
            outcome.run_dir,
            apply_flags(args),
            run_dir=args.apply_run_dir,
            observer=observer,
            say=say,
            argv=redacted_argv(),
            regenerate=regenerate_of(args),
            pick=args.setting,
        )
        return int(applied.exit_code)

    return usage_errors(err, "pilot", go)
