"""What the pool, its workers and the session share: the settings, the row context, the
sink protocol and the tally. The stop switch they also share is
``batchgen.limits.stop.RunControl``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from batchgen.config import FIXED_CONCURRENCY, POOL_DEFAULTS, PoolConfig
from batchgen.errors import ErrorClass
from batchgen.jobs.model import Job
from batchgen.runlog.row import Row
from batchgen.storage import ImageStore, LocalImages


class Sink(Protocol):
    """Where rows go: the run log's writer, or a plain list in tests."""

    def append(self, row: Row, /) -> None: ...


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """The pool's working settings; a session builds them with :meth:`from_config` (the
    defaults here are batchgen.config's, for a pool driven directly, as in tests)."""

    concurrency: int = FIXED_CONCURRENCY
    timeout: float = POOL_DEFAULTS["timeout"]
    max_attempts: int = POOL_DEFAULTS["max_attempts"]
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    grace_s: float = POOL_DEFAULTS["grace"]
    # a run that gets nothing but 429s for this long stops (exit 3), its jobs pending
    stall_timeout_s: float = POOL_DEFAULTS["stall_timeout"]
    # a run whose requests all fail with network errors, none answered for this long (or
    # one job's attempts all spent so), stops (exit 3), its jobs pending (runner.reach)
    unreachable_window_s: float = 5.0

    @classmethod
    def from_config(cls, pool: PoolConfig) -> PoolSettings:
        return cls(
            concurrency=pool.concurrency_cap,
            stall_timeout_s=pool.stall_timeout_s,
            timeout=float(pool.timeout),
            max_attempts=int(pool.max_attempts),
            grace_s=float(pool.grace),
        )


@dataclass(frozen=True, slots=True)
class RowContext:
    """What every row of this session shares."""

    run_id: str
    session: int
    provider: str
    images_dir: Path
    checker: Any = None  # batchgen.checks.ingest.IngestChecker: measures each saved image
    # a regeneration round's file name tag ("~r2"): new images never overwrite old ones
    image_tag: str = ""
    # jobs run again after an edit of their job line or input images: their new images get
    # the session's tag ("~s2") and do not overwrite the images the earlier answer paid for
    retag: frozenset[str] = frozenset()
    # where the images go (batchgen.storage): None is the run dir's images/ folder
    store: ImageStore | None = None

    def __post_init__(self) -> None:
        if self.store is None:
            object.__setattr__(self, "store", LocalImages(self.images_dir))

    @property
    def images(self) -> ImageStore:
        assert self.store is not None  # set by __post_init__
        return self.store

    def tag_of(self, job_id: str) -> str:
        if self.image_tag or job_id not in self.retag:
            return self.image_tag
        return f"~s{self.session}"


@dataclass
class PoolTally:
    """Live counters for the progress display and the end-of-session summary."""

    taken: int = 0
    ok_jobs: int = 0
    failed_jobs: int = 0
    skipped_jobs: int = 0
    images: int = 0
    attempts: int = 0
    retries: int = 0
    cost_usd: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    failed_by_class: Counter[str] = field(default_factory=Counter)
    skipped_by_class: Counter[str] = field(default_factory=Counter)

    def ok(self, job: Job, images: int, cost: float) -> None:
        self.attempts += 1
        self.ok_jobs += 1
        self.images += images
        self.cost_usd += cost

    def error(self, job: Job, klass: ErrorClass, final: bool, cost: float = 0.0) -> None:
        self.attempts += 1
        self.cost_usd += cost
        self.errors[klass.value] += 1
        if final:
            if klass.action.value in ("fail_job", "retry"):
                self.failed_jobs += 1
                self.failed_by_class[klass.value] += 1
            else:
                self.skipped_jobs += 1
        else:
            self.retries += 1

    def skipped(self, job: Job, reason: ErrorClass) -> None:
        self.skipped_jobs += 1
        self.skipped_by_class[reason.value] += 1

    @property
    def finished(self) -> int:
        return self.ok_jobs + self.failed_jobs + self.skipped_jobs
