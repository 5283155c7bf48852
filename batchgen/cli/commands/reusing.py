"""What `run --from-pilot/--reuse/--regenerate-below` and `pilot --apply` share: the pilot's
setting applied, the library's reuse, the quality loop after the run. Its imports (resume,
regeneration, the library's index) load pandas and pyarrow.compute, which a plain run never
does: `batchgen run` loads this module only for those flags."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from batchgen.cli.common import UsageError, flags_of
from batchgen.cli.session import ConsoleObserver, redacted_argv
from batchgen.config import RunConfig
from batchgen.library.index import DEFAULT_LIBRARY, Library
from batchgen.pilot.apply import run_apply
from batchgen.session.outcome import EXIT_STOPPED
from batchgen.session.regenerate import Regenerate
from batchgen.session.resume import resume_run
from batchgen.session.start import default_run_dir, start_run


def reuse_spec(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--reuse [LIBRARY]`` as run.json's settings.reuse (library.reuse)."""
    if getattr(args, "reuse", None) is None:
        return None

    path = Path(args.reuse).expanduser().resolve() if args.reuse else DEFAULT_LIBRARY
    Library(path).check()  # a damaged index: a usage error now, before anything is sent
    return {
        "sources": [{"kind": "library", "path": str(path)}],
        "bar": getattr(args, "reuse_bar", None),
    }


def regenerate_of(args: argparse.Namespace) -> Regenerate | None:
    below = getattr(args, "regenerate_below", None)
    if below is None:
        return None

    return Regenerate(float(below), int(args.max_rounds))


def apply_flags(args: argparse.Namespace) -> dict[str, Any]:
    skip = {
        "jobfile",
        "run_dir",
        "apply",
        "apply_run_dir",
        "from_pilot",
        "setting",
        "regenerate_below",
        "max_rounds",
        "reuse_bar",
        "sample",
        "seed",
        "try_",
        "bar",
        "target",
        "confidence",
    }
    flags = {k: v for k, v in flags_of(args).items() if k not in skip}
    flags["reuse"] = reuse_spec(args)
    return flags


def run_reusing(args: argparse.Namespace, observer: ConsoleObserver) -> int:
    """--from-pilot (the pilot's setting and images), --reuse (the library), or the
    quality loop right after the run (--regenerate-below)."""
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
