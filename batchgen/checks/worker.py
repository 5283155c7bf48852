"""What the check workers run, importable without numpy or Pillow: the run's process only
names these functions (a task is pickled by name); the workers import the decoding."""

from __future__ import annotations

import os
import threading
import time
from typing import Any


def run_batch(*args: Any) -> Any:
    from batchgen.checks.measure import measure_batch

    return measure_batch(*args)


def warm() -> None:
    """A no-op task: makes the pool start every worker now, not at the first real batch."""


def worker_init(parent_pid: int, nice: bool = True) -> None:
    """Worker initializer: yield the CPU to the run (nice 19), load the decoding, and exit when
    the run's process is gone (kill -9 leaves the pool's pipes open in the workers: they would
    wait forever)."""
    if nice:
        try:
            os.nice(19)
        except (AttributeError, OSError):
            pass
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    import batchgen.checks.measure  # noqa: F401 - numpy and Pillow, before the first task


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(0)
