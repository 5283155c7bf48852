"""The live progress display: a rich bar on a terminal, a plain line every few seconds
otherwise (CI logs, pipes), nothing with --quiet."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

from batchgen.money import Budget
from batchgen.runner.pool import PoolTally
from batchgen.session.execute import total_spent

__all__ = ["Progress", "total_spent"]

_PLAIN_EVERY_S = 5.0


class Progress:
    def __init__(
        self,
        console: Console,
        *,
        total: int,
        quiet: bool,
        budget: Budget | None = None,
        status: Callable[[], str] | None = None,
    ) -> None:
        self.console = console
        self.status = status  # the limiter's: current rate, in-flight limit, pause
        self.total = total
        self.quiet = quiet
        self.budget = budget
        self.live = console.is_terminal and not quiet
        self._start = time.monotonic()
        self._last_plain = 0.0
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        self._last: PoolTally | None = None  # the latest tally
        self._printed: tuple[int, int, int] | None = None  # (ok, failed, skipped) last shown

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        if self.live:
            self._bar = RichProgress(
                TextColumn("[bold]batchgen"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                refresh_per_second=4,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("run", total=self.total, stats="")
        return self

    def __exit__(self, *exc: object) -> None:
        # the last line shown holds the session's final counts: the summary after it agrees
        if self._last is not None and not self.quiet:
            if self._bar is not None and self._task is not None:
                self._bar.update(
                    self._task, completed=self._done(self._last), stats=self.stats_line(self._last)
                )
            elif self._printed != self._key(self._last):
                self._print_plain(self._last, time.monotonic())
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    @staticmethod
    def _key(tally: PoolTally) -> tuple[int, int, int]:
        return (tally.ok_jobs, tally.failed_jobs, tally.skipped_jobs)

    @staticmethod
    def _done(tally: PoolTally) -> int:
        """Jobs with an outcome: succeeded or failed for good. A job a stop cut (skipped: a
        budget, a signal, an unreachable endpoint) is pending, as the summary counts it."""
        return tally.ok_jobs + tally.failed_jobs

    def stats_line(self, tally: PoolTally) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-6)
        per_min = tally.images / elapsed * 60
        pending = max(self.total - self._done(tally), 0)
        spent = total_spent(self.budget, tally)
        line = (
            f"ok {tally.ok_jobs} · failed {tally.failed_jobs} · pending {pending} · "
            f"{per_min:.0f} img/min · ${spent:.4f}"
        )
        return f"{line} · limits: {self.status()}" if self.status else line

    def update(self, tally: PoolTally) -> None:
        if self.quiet:
            return
        self._last = tally
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self._done(tally), stats=self.stats_line(tally))
            return
        now = time.monotonic()
        due = now - self._last_plain >= _PLAIN_EVERY_S or tally.finished >= self.total
        if due and self._key(tally) != self._printed:
            self._print_plain(tally, now)

    def _print_plain(self, tally: PoolTally, now: float) -> None:
        self._last_plain = now
        self._printed = self._key(tally)
        elapsed = now - self._start
        self.console.print(
            f"[{elapsed:7.1f}s] {self._done(tally)}/{self.total} · {self.stats_line(tally)}",
            markup=False,
        )
