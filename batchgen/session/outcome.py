"""How a session and a command of the library ended: the session's result, and the exit code
as the CLI returns it (importing this is cheap)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchgen.errors import ErrorClass

if TYPE_CHECKING:
    from batchgen.money import Budget
    from batchgen.runlog.rundir import RunDir
    from batchgen.runner.pool import PoolTally

# 0 every job succeeded; 1 some failed for good; 2 bad usage, nothing sent; 3 stopped early
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class SessionResult:
    """How one session (live or Batch API) ended."""

    tally: PoolTally
    stop_reason: ErrorClass | None
    stop_message: str
    exit_code: int
    how: str = "completed"  # the session's ending in run.json
    learned: dict[str, Any] | None = None  # what the autopilot learned (one endpoint)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How run, resume or collect ended: the exit code as the CLI returns it, and the last
    session's result (None when no session ran)."""

    rundir: RunDir | None
    exit_code: int
    result: SessionResult | None = None
    budget: Budget | None = None
