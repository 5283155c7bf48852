"""What the pool, its workers and the session share: the settings, the row context and the
sink protocol. The stop switch they also share is ``batchgen.limits.stop.RunControl``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from batchgen.config import FIXED_CONCURRENCY, POOL_DEFAULTS, PoolConfig


class Sink(Protocol):
    def append(self, row: dict[str, Any]) -> None: ...


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
