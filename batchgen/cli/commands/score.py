"""`batchgen score`: score a run's images with a judge or CLIP."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from batchgen.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_USAGE,
    UsageError,
    flags_of,
)
from batchgen.cli.score import READS
from batchgen.cli.session import make_console, print_score_summary
from batchgen.errors import printable
from batchgen.session.scoring import score_directory


def cmd_score(args: argparse.Namespace) -> int:

    console = make_console()
    err = make_console(stderr=True)
    try:
        spec, result = score_directory(args.run_dir, flags_of(args, READS), say=_say_to(console))
    except UsageError as exc:
        err.print(f"batchgen score: {exc}", markup=False)
        return EXIT_USAGE
    print_score_summary(console, Path(args.run_dir), spec, result)
    if result.stop_reason is not None:
        console.print(f"[yellow]stopped ({result.stop_reason.value}): {result.stop_message}[/]")
        console.print(f"to score the rest: batchgen score {Path(args.run_dir)}")
        return EXIT_STOPPED
    return EXIT_FAILED if result.tally.failed else EXIT_OK


def _say_to(console: Console) -> Callable[[str, str | None], None]:
    def say(text: str, style: str | None = None) -> None:
        with contextlib.suppress(OSError):  # the terminal may be gone after SIGHUP
            console.print(printable(text), markup=False, style=style)

    return say
