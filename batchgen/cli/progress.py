"""The live progress display: one line fitted to the terminal on a terminal, a plain line every
few seconds otherwise (CI logs, pipes), nothing with --quiet.

The terminal line is built for its width: its parts have a rank, and a narrow terminal drops
the least important first, so the count, the rate, the cost and the ETA are the last to go
(80 columns keeps them all); the bar takes what room is left, and only when there is some.

    batchgen ━━━━━━━━━━╸━━━━━━ 81/300 · ok 78 · failed 3 · pending 219 · 52 img/min · $0.4120
    · 1:34 · ETA 4:12 · limits 290 req/min, 12/256 in flight   (one line)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.text import Text

from batchgen.money import Budget
from batchgen.numbers import compact
from batchgen.runner.pool import PoolTally
from batchgen.session.record import total_spent

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

__all__ = ["Progress", "total_spent"]

_PLAIN_EVERY_S = 5.0
_SEP = " · "
_BAR_MIN, _BAR_MAX = 10, 40
_LABEL = "batchgen "


class _Part(NamedTuple):
    rank: int  # 0 is kept longest
    order: int  # where it stands on the line
    text: str
    style: str = ""


def _clock(seconds: float) -> str:
    s = max(int(seconds), 0)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    def __init__(
        self,
        console: Console,
        *,
        total: int,
        quiet: bool,
        budget: Budget | None = None,
        status: Callable[[], str] | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.status = status  # the limiter's: current rate, in-flight limit, pause
        self.total = total
        self.quiet = quiet
        self.budget = budget
        self.now = now
        self.live = console.is_terminal and not quiet
        self._start = now()
        self._last_plain = 0.0
        self._tally = PoolTally()
        self._status: str | None = None  # the limiter's, read on the event loop's thread
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        self._last: PoolTally | None = None  # the latest tally
        self._printed: tuple[int, int, int] | None = None  # (ok, failed, skipped) last shown

    def __enter__(self) -> Progress:
        self._start = self.now()
        if self.live:
            # lazy: rich.progress (with rich.table and fractions: ~15 ms of a run's start)
            # draws only the live bar, on a terminal without --quiet
            from batchgen.cli.progressbar import live_bar

            self._bar = live_bar(self.console, lambda: self.line(self._tally, self.console.width))
            self._bar.__enter__()
            self._task = self._bar.add_task("run", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        # the last line shown holds the session's final counts: the summary after it agrees
        if self._last is not None and not self.quiet:
            if self._bar is not None and self._task is not None:
                self._bar.update(self._task, completed=_done(self._last))
            elif self._printed != _key(self._last):
                self._print_plain(self._last, self.now())
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    # -- what the line says ------------------------------------------------------------------
    def _parts(self, tally: PoolTally) -> list[_Part]:
        elapsed = max(self.now() - self._start, 1e-6)
        per_min = tally.images / elapsed * 60
        pending = max(self.total - _done(tally), 0)
        spent = total_spent(self.budget, tally)
        parts = [
            _Part(0, 2, f"{_done(tally):,}/{self.total:,}", "bold"),
            _Part(1, 6, f"{compact(per_min)} img/min"),
            _Part(2, 7, f"${spent:,.2f}" if spent >= 100 else f"${spent:.4f}"),
            _Part(3, 9, f"ETA {self._eta(tally, elapsed)}"),
            _Part(5, 5, f"pending {pending:,}"),
            _Part(6, 3, f"ok {tally.ok_jobs:,}", "green"),
            _Part(7, 8, _clock(elapsed), "dim"),
        ]
        if tally.failed_jobs:  # a failure is news: kept right after the essentials
            parts.append(_Part(4, 4, f"failed {tally.failed_jobs:,}", "red"))
        if self._status is not None:
            parts.append(_Part(8, 10, f"limits {self._status}", "dim"))
        return parts

    def _eta(self, tally: PoolTally, elapsed: float) -> str:
        done = _done(tally)
        left = self.total - done
        if left <= 0:
            return "0:00"
        if done == 0:
            return "-:--"
        return _clock(left * elapsed / done)

    def observe(self, tally: PoolTally) -> None:
        """Take the latest counts and the limiter's status. On the event loop's thread: the
        limiter reads the loop's clock, and rich redraws from its own thread, which must not."""
        self._tally = tally
        self._status = self.status() if self.status is not None else None

    def line(self, tally: PoolTally, width: int) -> Text:
        """The terminal line for ``width`` columns: the most important parts that fit, in
        their order; the bar in front when at least 10 columns are left (and the name before
        it when there is room for that too)."""
        chosen: list[_Part] = []
        used = 0
        for part in sorted(self._parts(tally), key=lambda p: p.rank):
            extra = len(part.text) + (len(_SEP) if chosen else 0)
            if used + extra <= width:
                chosen.append(part)
                used += extra
            elif part.text.startswith("limits ") and ", " in part.text:
                short = part.text.split(", ")[0]  # the rate alone, when all of it does not fit
                if used + len(short) + len(_SEP) <= width:
                    chosen.append(_Part(part.rank, part.order, short, part.style))
                    used += len(short) + len(_SEP)
        chosen.sort(key=lambda p: p.order)
        text = Text(no_wrap=True, overflow="crop")
        for i, part in enumerate(chosen):
            if i:
                text.append(_SEP, style="dim")
            text.append(part.text, style=part.style)
        room = width - used - 1
        if room < _BAR_MIN:
            return text
        label = room >= _BAR_MIN + len(_LABEL)
        bar = bar_text(
            ProgressBar(
                total=max(self.total, 1),
                completed=_done(tally),
                width=min(room - (len(_LABEL) if label else 0), _BAR_MAX),
            ),
            self.console,
        )
        head = Text(_LABEL if label else "", style="bold")
        return Text.assemble(head, bar, " ", text, no_wrap=True, overflow="crop")

    def stats_line(self, tally: PoolTally) -> str:
        """The plain line's figures (pipes and CI logs: no width to fit)."""
        parts = sorted(
            (p for p in self._parts(tally) if p.order not in (2, 8)), key=lambda p: p.order
        )
        return _SEP.join(p.text for p in parts)

    def update(self, tally: PoolTally) -> None:
        if self.quiet:
            return
        self.observe(tally)
        self._last = tally
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=_done(tally))
            return
        now = self.now()
        due = now - self._last_plain >= _PLAIN_EVERY_S or tally.finished >= self.total
        if due and _key(tally) != self._printed:
            self._print_plain(tally, now)

    def _print_plain(self, tally: PoolTally, now: float) -> None:
        self._last_plain = now
        self._printed = _key(tally)
        elapsed = now - self._start
        self.console.print(
            f"[{_clock(elapsed)}] {_done(tally):,}/{self.total:,} · {self.stats_line(tally)}",
            markup=False,
        )


def _key(tally: PoolTally) -> tuple[int, int, int]:
    return (tally.ok_jobs, tally.failed_jobs, tally.skipped_jobs)


def _done(tally: PoolTally) -> int:
    """Jobs with an outcome: succeeded or failed for good. A job a stop cut (skipped: a
    budget, a signal, an unreachable endpoint) is pending, as the summary counts it."""
    return tally.ok_jobs + tally.failed_jobs


def bar_text(bar: ProgressBar, console: Console) -> Text:
    """The bar as Text, so it joins the line's other parts."""
    segments = console.render(bar, console.options.update(width=bar.width or _BAR_MIN))
    out = Text()
    for seg in segments:
        if seg.text != "\n":
            out.append(seg.text, style=seg.style)
    return out
