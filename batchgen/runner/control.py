"""What the pool, its workers and the session share: the settings, the row context and the
sink protocol. The stop switch they also share is ``batchgen.limits.stop.RunControl``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class Sink(Protocol):
    def append(self, row: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class PoolSettings:
    concurrency: int = 16
    timeout: float = 120.0
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    grace_s: float = 30.0
    # a run that gets nothing but 429s for this long stops (exit 3), its jobs pending
    stall_timeout_s: float = 300.0


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
