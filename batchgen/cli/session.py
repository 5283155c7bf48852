"""The CLI's observer of a session: the progress bar, the quote and its confirmation, and the
lines printed when a session ends. The session itself is the library's (batchgen.session)."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import functools
import gc
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from batchgen.cli.prepare import show_quote_and_confirm
from batchgen.cli.progress import Progress
from batchgen.errors import ErrorClass, UsageError, printable
from batchgen.money import Budget
from batchgen.numbers import plural
from batchgen.runlog.rundir import RunDir, redact_argv
from batchgen.runner.pool import PoolTally
from batchgen.session.outcome import EXIT_OK, EXIT_USAGE, SessionResult
from batchgen.session.prepare import Checked, JobFileProblems
from batchgen.session.record import budget_stop
from batchgen.session.start import Declined


class _Console(Console):
    """A rich console that survives its reader going away: on a broken pipe (``batchgen run …
    | head -3``) it goes quiet and says so through ``closed``, where rich's own would raise
    SystemExit(1) mid-session and leave the session to look crashed. The session sees
    ``closed`` (ConsoleObserver.closed) and stops like a Ctrl-C: rows flushed, the session
    ended as interrupted, jobs pending."""

    closed = False

    def on_broken_pipe(self) -> None:
        self.quiet = True
        self.closed = True
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.file.fileno())  # later writes (and the exit flush) vanish
            os.close(devnull)


class ConsoleObserver:
    """Prints what a session tells (stdout), notes on the run directory (stderr)."""

    def __init__(self, console: Console, err: Console, args: argparse.Namespace) -> None:
        self.console, self.err, self.args = console, err, args
        self.quiet = bool(getattr(args, "quiet", False))

    def say(self, text: str, style: str | None = None) -> None:
        # the terminal may be gone (SIGHUP: a write fails with EIO): the stop must go on
        with contextlib.suppress(OSError):
            self.console.print(text, markup=False, style=style)

    def warn(self, text: str) -> None:
        self.err.print(text, markup=False)

    def closed(self) -> str | None:
        """Why the session should stop for its output: stdout's reader went away."""
        if getattr(self.console, "closed", False):
            return "stdout was closed (the pipe's reader ended)"
        return None

    @contextlib.contextmanager
    def progress(
        self, total: int, budget: Budget | None, status: Callable[[], str]
    ) -> Iterator[Callable[[PoolTally], None]]:
        bar = Progress(self.console, total=total, quiet=self.quiet, budget=budget, status=status)
        with bar:
            yield bar.update

    def confirm(self, checked: Checked) -> bool:
        go = show_quote_and_confirm(self.console, self.args, checked, self.quiet)
        return go and self.closed() is None  # nobody reads what it would print: send nothing

    def session_ended(
        self, rundir: RunDir, result: SessionResult, budget: Budget | None, *, summary: bool
    ) -> None:
        if summary:
            print_run_summary(rundir.path, self.console)
        print_ending(self.console, rundir, result, budget)

    def batch_ended(
        self, rundir: RunDir, result: SessionResult, outcome: Any, budget: Budget | None
    ) -> None:
        if not self.quiet and not outcome.detached:
            print_run_summary(rundir.path, self.console)
        if result.stop_reason is not None:
            print_ending(self.console, rundir, result, budget)
        print_batch_ending(self.console, rundir, outcome, result.exit_code)

    def scored(self, run_dir: Any, spec: Any, result: Any) -> None:
        print_score_summary(self.console, run_dir, spec, result)


def print_ending(
    console: Console, rundir: RunDir, result: SessionResult, budget: Budget | None
) -> None:
    """The final lines: where things are and how the session ended. No markup: a path or a
    provider's message holding ``[/x]`` is printed as written, control sequences removed."""
    path = shlex.quote(str(rundir.path))

    def say(text: str, style: str | None = None) -> None:
        console.print(printable(text, one_line=True), markup=False, style=style)

    # --images-to: the URL run.json recorded (no credential can be in it: storage.url)
    images_to = ((rundir.load() if rundir.exists() else {}).get("settings") or {}).get("images_to")
    say(f"images: {images_to or rundir.images_dir}")
    say(
        f"log:    {rundir.log_dir}  (duckdb: SELECT * FROM "
        f"read_parquet('{rundir.log_dir}/*.parquet'))"
    )
    reason = result.stop_reason
    if reason is None:
        say(f"ended:  {_finished(result, path)}")
    elif reason.value == "budget" and budget is not None:
        # the message carries the resume command with a cap that lets the rest through
        say(f"ended:  {budget_ending(rundir, budget)}", "yellow")
    else:
        say(f"ended:  stopped ({reason.value}): {result.stop_message}", "yellow")
        # the resume command is printed once, on the last line, with the real path
        remedy = reason.remedy
        if not remedy.startswith(_RESUME):
            say("        " + remedy.replace(_RESUME, "resume (the command below)"))
        say(f"to finish the rest: batchgen resume {path}", "bold")


_RESUME = "`batchgen resume RUN_DIR`"


def budget_ending(rundir: RunDir, budget: Budget) -> str:
    """The budget's message with the rest of the run as resume would select it: every job
    not sent counted, and a cap (or monthly budget) that covers all of them suggested; the
    text run.json records and --notify sends (session/record.py's budget_stop)."""
    stop = budget_stop(rundir, budget)
    assert stop is not None  # a budget was given
    return stop[0]


def _finished(result: SessionResult, path: str) -> str:
    if result.exit_code == EXIT_OK:
        return "every job succeeded"
    return (
        f"finished; {plural(result.tally.failed_jobs, 'job')} failed for good "
        f"(see `batchgen report {path}`)"
    )


def print_batch_ending(console: Console, rundir: RunDir, outcome: Any, code: int) -> None:
    path = shlex.quote(str(rundir.path))
    open_parts = outcome.ctx.state.open_parts()
    if outcome.detached:
        console.print(
            f"submitted {plural(len(open_parts), 'batch', 'batches')}; they run at the provider "
            f"(up to 24 h). Collect the results later with: "
            f"[bold]batchgen collect {path}[/]  (cancel them: batchgen cancel {path})"
        )
        return
    if open_parts:
        console.print(
            f"{plural(len(open_parts), 'batch', 'batches')} still open at the provider: "
            f"[bold]batchgen collect {path}[/] (or `batchgen resume {path}`) picks "
            "them up; nothing was submitted twice"
        )
    # the jobs a budget refused were never submitted: the ending's budget line counts them
    # (with the budget that stopped them and what to raise it to), not this one
    pending = outcome.pending - outcome.ctx.tally.skipped_by_class.get(str(ErrorClass.BUDGET), 0)
    if pending > 0:
        console.print(
            f"{plural(pending, 'job')} pending (expired, failed or cancelled batches, "
            f"errored lines): [bold]batchgen resume {path}[/] submits them again "
            f"(`--via live` finishes them on the live API)"
        )
    if code == EXIT_OK:
        console.print("ended:  every job succeeded")


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # a pipe or a CI log gets 120 columns, not rich's 80, so tables keep their model names
    width = None if stream.isatty() else 120
    return _Console(highlight=False, soft_wrap=True, file=stream, width=width)


# A session's process keeps tens of thousands of long-lived objects (modules, the job list,
# pyarrow's) and makes little cyclic garbage, yet at CPython's default young-generation
# threshold (700) its collector ran every few dozen requests and cost ~8 % of the client's CPU
# on the instant bench; frozen at start and collected every 5,000 allocations, ~2 %
# (docs/bench.md). The CLI's process is batchgen's own; the Python API leaves its caller's
# collector alone.
_GC_YOUNG = 5_000


@contextlib.contextmanager
def session_gc() -> Iterator[None]:
    """The CLI's session in this process: what is alive now frozen out of every collection,
    and the young generation collected every ``_GC_YOUNG`` allocations; both undone after."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
        _collect_once_at_exit()


@functools.cache
def _collect_once_at_exit() -> None:
    """At the CLI process's exit, one full collection and then everything alive frozen: the
    interpreter's teardown otherwise walks every object in several full collections while it
    clears the modules, ~0.1-0.15 s of CPU after the last answer on the instant bench against
    ~0.05 s this way (docs/bench.md). Garbage cycles still get their finalizers in the one
    collection; atexit runs before the teardown, after the threads are joined."""
    atexit.register(_collect_and_freeze)


def _collect_and_freeze() -> None:
    gc.collect()
    gc.freeze()


def usage_errors(err: Console, command: str, go: Callable[[], int]) -> int:
    """``go()``, or exit 2 with the message of what stopped it before anything was sent;
    ``go`` runs under :func:`session_gc`."""

    try:
        with session_gc():
            return go()
    except Declined:
        return EXIT_USAGE
    except JobFileProblems as exc:
        for line in exc.lines:
            err.print(line, markup=False)
        again = f"{command} again" if command in ("run", "pilot") else "resume again"
        err.print(f"nothing was sent: fix the job file and {again}")
        return EXIT_USAGE
    except UsageError as exc:
        err.print(f"batchgen {command}: {exc}", markup=False)
        return EXIT_USAGE


def redacted_argv() -> list[str]:
    """The command line for run.json's session record, secrets masked."""

    return redact_argv(sys.argv)


def print_score_summary(console: Any, run_dir: Path, spec: Any, result: Any) -> None:
    # lazy: the scores' summary reads them with pandas; every run's body imports this module
    # (its observer) and a plain run never imports pandas (tests/test_startup.py)
    from batchgen.quality.regenerate import best_per_job, weakest

    t = result.tally
    console.print(
        f"scored {plural(t.scored, 'image')}"
        + (f", {result.already} already scored" if result.already else "")
        + (f", {t.failed} could not be scored" if t.failed else "")
        + (f", {t.skipped} left for the next `score`" if t.skipped else "")
        + (f"; mean {result.mean:.2f}" if result.mean is not None else "")
        + f"; scoring cost ${t.cost_usd:.4f} ({plural(t.attempts, 'request')}, "
        f"{t.retries} retried)"
    )
    if result.possibly_twice:
        console.print(
            f"[yellow]{plural(result.possibly_twice, 'image')} "
            f"{'was' if result.possibly_twice == 1 else 'were'} in flight when a `score` of this "
            "run was killed: they may have been judged (and billed) twice[/]"
        )
    best = best_per_job(run_dir, spec.id)
    below = {
        j: b for j, b in best.items() if b["score"] is not None and b["score"] < spec.threshold
    }
    console.print(
        f"jobs whose best image scores below {spec.threshold:g}: {len(below)} of {len(best)}"
    )
    best_paths = {b["image_path"] for b in best.values()}
    shown = [r for r in weakest(run_dir, spec.id, 10**9) if r["image_path"] in best_paths][:5]
    if shown:
        console.print("weakest jobs (their best image):")

    for row in shown:
        # the judge's words are data: no control sequence reaches the terminal
        reasons = printable(str(row["reasons"] or ""), one_line=True)
        path = printable(str(row["image_path"]), one_line=True)
        console.print(f"  {row['score']:>4.1f}  {path}  {reasons}", markup=False)
    if below:
        console.print(
            f"regenerate them: batchgen resume {run_dir} --regenerate-below {spec.threshold:g}"
        )


_TOLD_BY_THE_ENDING = frozenset({"pending", f"stop_{ErrorClass.BUDGET}"})


def print_run_summary(run_dir: Path | str, console: Console) -> None:
    """The short summary `batchgen run` prints at the end (no image checks: it must be quick).
    The resume command is left to the ending's "to finish the rest" line: printed once."""
    # lazy: the analyzers (pandas, pyarrow.compute, matplotlib): only a run that prints its
    # summary pays for them; `run --quiet` never imports pandas (tests/test_startup.py)
    from batchgen.reports import build_report
    from batchgen.reports.text import summary

    run = build_report(run_dir, image_checks=False).run
    # a budget's stop is told by the ending, with the budget that stopped the run (--max-cost
    # or a monthly one) and a figure for the rest, where the report's says "--max-cost HIGHER"
    advice = tuple(r for r in run.recommendations if r.kind not in _TOLD_BY_THE_ENDING)
    console.print(summary(dataclasses.replace(run, recommendations=advice)))
