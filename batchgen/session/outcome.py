"""How a command of the library ended, as the CLI's exit status (importing this is cheap)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batchgen.money import Budget
    from batchgen.runlog.rundir import RunDir
    from batchgen.session.execute import SessionResult

# 0 every job succeeded; 1 some failed for good; 2 bad usage, nothing sent; 3 stopped early
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Outcome:
    """How run, resume or collect ended: the exit code as the CLI returns it, and the last
    session's result (None when no session ran)."""

    rundir: RunDir | None
    exit_code: int
    result: SessionResult | None = None
    budget: Budget | None = None
