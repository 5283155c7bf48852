"""What every stage of a batch session shares: options, the API, the state, the log writer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from batchgen.batch.api import BatchBackend
from batchgen.batch.state import BatchState
from batchgen.config import PoolConfig
from batchgen.jobs.model import Job
from batchgen.limits.stop import RunControl
from batchgen.money import Budget, PriceTable, Reservation
from batchgen.runlog.rundir import RunDir
from batchgen.runner.pool import PoolTally


class Say(Protocol):
    """One line for the user about the batches; ``warning``: something to look at. What it
    looks like is the caller's (the session's observer): batch/ holds no markup."""

    def __call__(self, text: str, /, *, warning: bool = False) -> None: ...


def say_nothing(text: str, /, *, warning: bool = False) -> None:
    """The Say of a quiet session."""


ENDPOINT = "/v1/images/generations"
MAX_REQUESTS = 50_000  # per input file (the provider's limit)
MAX_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BatchOptions:
    max_requests: int = MAX_REQUESTS
    max_bytes: int = MAX_BYTES
    poll_s: float = 5.0  # first poll interval; doubles while nothing changes
    poll_max_s: float = 60.0
    detach: bool = False
    deadline_at: float | None = None  # wall clock (unix s) by which every job must be done
    assume_latency_s: float | None = None  # one live request, for the deadline's estimate
    cancel_open: bool = False  # cancel the run's open batches first (resume --via live)
    collect_only: bool = False  # follow and collect what was submitted; submit nothing


@dataclass(slots=True)
class BatchContext:
    rundir: RunDir
    run_id: str
    session: int
    provider: str
    api: BatchBackend
    state: BatchState
    sink: Any  # RunLogWriter
    prices: PriceTable  # the batch price table
    budget: Budget | None
    options: BatchOptions
    control: RunControl
    jobs_of: Callable[[set[str]], dict[str, Job]]  # ids -> Job, from the job file
    say: Say
    tally: PoolTally = field(default_factory=PoolTally)
    pool: PoolConfig = field(default_factory=PoolConfig)  # the live settings (deadline)
    done_ids: set[str] = field(default_factory=set)  # jobs with an ok row
    logged: dict[str, set[str]] = field(default_factory=dict)  # batch id -> job ids with rows
    holds: dict[int, Reservation] = field(default_factory=dict)  # part -> money held
    cutover: bool = False  # the deadline sent the rest to the live API
    started_at: float = field(default_factory=time.time)  # wall clock, the session's start
