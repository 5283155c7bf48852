"""What the check workers run, importable without numpy or Pillow: the run's process only
names these functions (a task names its function by module and name); the workers import
the decoding. ``serve()`` is a worker process's main loop (procpool.py starts it)."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any


def run_batch(*args: Any) -> Any:
    # lazy: loads numpy, PIL; this module is imported without them
    from batchgen.checks.measure import measure_batch

    return measure_batch(*args)


def warm() -> None:
    """A no-op task: makes the pool start every worker now, not at the first real batch."""


def worker_init(parent_pid: int, nice: bool = True) -> None:
    """Yield the CPU to the run (nice 19), load the decoding, and exit when the run's process
    is gone (kill -9 leaves the pipes open in the workers: they would wait forever)."""
    if nice:
        try:
            os.nice(19)
        except (AttributeError, OSError):
            pass
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    # lazy: loads numpy, PIL; this module is imported without them
    import batchgen.checks.measure  # noqa: F401 - numpy and Pillow, before the first task


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(0)


def serve() -> None:
    """A worker process: read (module, function, args) tasks from stdin, answer (ok, result
    or error text) on stdout, in order, until stdin closes. Ctrl-C is the run's, not ours:
    ignored (the worker is in its own session too)."""

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the results' stream
    tasks, results = Connection(0, writable=False), Connection(out_fd, readable=False)
    worker_init(os.getppid(), nice=sys.argv[1:2] != ["0"])
    while True:
        try:
            module, name, args = tasks.recv()
        except (EOFError, OSError):
            break
        try:
            if not module.startswith("batchgen."):
                raise ValueError(f"not a batchgen function: {module}.{name}")
            # lazy: each task names the batchgen function it runs; its module loads then
            value = getattr(importlib.import_module(module), name)(*args)
            answer: tuple[bool, Any] = (True, value)
        except Exception as exc:
            answer = (False, f"{type(exc).__name__}: {exc}")
        try:
            results.send(answer)
        except OSError:
            break
    os._exit(0)
