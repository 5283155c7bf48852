"""What a session tells its caller. The library prints nothing: every message, the progress
and the quote go through an :class:`Observer`. :class:`Silent` (the default) drops them and
goes ahead without asking; the CLI passes a rich-console observer (``cli/session.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from batchgen.money import Budget
    from batchgen.runlog.rundir import RunDir
    from batchgen.runner.pool import PoolTally
    from batchgen.session.outcome import SessionResult
    from batchgen.session.prepare import Checked

ProgressFn = Callable[["PoolTally"], None]


class Observer(Protocol):
    def say(self, text: str, style: str | None = None) -> None:
        """One line for the user (``style``: a rich style such as "yellow"; plain text)."""

    def warn(self, text: str) -> None:
        """A note about the run directory itself (a damaged file moved aside): stderr."""

    def progress(
        self, total: int, budget: Budget | None, status: Callable[[], str]
    ) -> contextlib.AbstractContextManager[ProgressFn]:
        """For one live session: a function called with the pool's tally as jobs finish."""

    def confirm(self, checked: Checked) -> bool:
        """The quote of what is about to run; False stops before anything is sent."""

    def session_ended(
        self, rundir: RunDir, result: SessionResult, budget: Budget | None, *, summary: bool
    ) -> None:
        """A session ended (``summary``: the run's short report belongs before the ending)."""

    def batch_ended(
        self, rundir: RunDir, result: SessionResult, outcome: Any, budget: Budget | None
    ) -> None:
        """A Batch API session ended (``outcome``: batchgen.batch.session.BatchOutcome)."""

    def scored(self, run_dir: Any, spec: Any, result: Any) -> None:
        """A scoring pass of the quality loop ended (quality.session.ScoreResult)."""


class Silent:
    """Says nothing, asks nothing; ``on_progress`` (if given) gets each tally."""

    def __init__(self, on_progress: ProgressFn | None = None) -> None:
        self.on_progress = on_progress

    def say(self, text: str, style: str | None = None) -> None:
        return None

    def warn(self, text: str) -> None:
        return None

    @contextlib.contextmanager
    def progress(
        self, total: int, budget: Budget | None, status: Callable[[], str]
    ) -> Iterator[ProgressFn]:
        yield self.on_progress or _ignore

    def confirm(self, checked: Checked) -> bool:
        return True

    def session_ended(
        self, rundir: RunDir, result: SessionResult, budget: Budget | None, *, summary: bool
    ) -> None:
        return None

    def batch_ended(
        self, rundir: RunDir, result: SessionResult, outcome: Any, budget: Budget | None
    ) -> None:
        return None

    def scored(self, run_dir: Any, spec: Any, result: Any) -> None:
        return None


def _ignore(tally: PoolTally) -> None:
    return None
