"""The image checks' worker processes: a small executor over plain subprocesses.

Why not ``multiprocessing`` / ``ProcessPoolExecutor``: with the spawn and forkserver start
methods every child re-runs the caller's ``__main__`` script (as ``__mp_main__``) before its
first task. A script without an ``if __name__ == "__main__":`` guard — the docs' examples,
a notebook exported to a file — then runs its whole batch again in every worker (billed
again), or dies with "An attempt has been made to start a new process before the current
process has finished its bootstrapping phase". loky, joblib's backend, copies the same spawn
code. Fork is unsafe here (the run's process has threads). So each worker is
``python -c 'from batchgen.checks.worker import serve; serve()'``: it imports batchgen and
nothing of the caller's, in its own session (``start_new_session``: the terminal's Ctrl-C
goes to the run, not to the workers, so they print no ``KeyboardInterrupt`` traceback), and
it exits when its stdin closes (the run ended, or was killed with -9).

Tasks and results cross the pipes as the stdlib's length-prefixed pickles
(``multiprocessing.connection.Connection`` over the subprocess's pipes). A task names a
function of batchgen by module and name; a worker runs its tasks in order, so each worker's
futures are a FIFO.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

_ENTRY = "from batchgen.checks.worker import serve; serve()"
_SHUTDOWN_WAIT_S = 10.0


def _worker_env() -> dict[str, str]:
    """The caller's environment, with this batchgen's folder first on the import path (a
    checkout run without installing must import the same code in its workers)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.pop("PYTHONSTARTUP", None)
    return env


class _Worker:
    def __init__(self, nice: bool, on_broken: Callable[[], None]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ENTRY, "1" if nice else "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_worker_env(),
            start_new_session=True,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.tasks = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        self.results = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.pending: collections.deque[cf.Future[Any]] = collections.deque()
        self.lock = threading.Lock()
        self.dead = False
        self._on_broken = on_broken
        self.reader = threading.Thread(target=self._read, name="image-check-results", daemon=True)
        self.reader.start()

    def send(self, fut: cf.Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        with self.lock:
            if self.dead:
                raise BrokenProcessPool("an image-check worker has ended")
            self.pending.append(fut)
            try:
                self.tasks.send((fn.__module__, fn.__qualname__, args))
            except OSError as exc:
                self.pending.pop()
                self.dead = True
                raise BrokenProcessPool(f"an image-check worker has ended: {exc}") from exc

    def _read(self) -> None:
        while True:
            try:
                ok, value = self.results.recv()
            except (EOFError, OSError):
                break
            with self.lock:
                fut = self.pending.popleft() if self.pending else None
            if fut is None or fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(RuntimeError(value))
        with self.lock:
            self.dead = True
            left = list(self.pending)
            self.pending.clear()
        for fut in left:
            if not fut.done():
                fut.set_exception(BrokenProcessPool("an image-check worker ended mid-task"))
        self._on_broken()

    def close_input(self) -> None:
        try:
            self.tasks.close()  # the worker ends when its stdin closes
        except OSError:
            pass

    def stop(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout)
        try:
            self.results.close()
        except OSError:
            pass


class WorkerPool(cf.Executor):
    """``workers`` batchgen check processes; ``submit`` takes a function of batchgen (it is
    named, not pickled) and arguments that pickle."""

    def __init__(self, workers: int, *, nice: bool = True, start: int | None = None) -> None:
        """``start`` of the ``workers`` processes now (all by default), the others by
        :meth:`grow` when there is work for them: each costs ~0.2 s of CPU to start."""
        self._shutdown = False
        self._lock = threading.Lock()
        self._nice = nice
        self.max_workers = max(1, workers)
        first = self.max_workers if start is None else max(1, min(start, self.max_workers))
        self._workers = [_Worker(nice, self._broken) for _ in range(first)]

    @property
    def size(self) -> int:
        """Workers started."""
        return len(self._workers)

    def grow(self) -> bool:
        """Start one more worker, unless all ``workers`` run (or the pool was shut down)."""
        with self._lock:
            if self._shutdown or len(self._workers) >= self.max_workers:
                return False
            self._workers.append(_Worker(self._nice, self._broken))
        return True

    def _broken(self) -> None:
        """A worker ended (crashed, killed): its tasks failed; the others go on."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        if kwargs:
            raise TypeError("WorkerPool.submit takes positional arguments only")
        fut: cf.Future[Any] = cf.Future()
        fut.set_running_or_notify_cancel()  # sent at once: it cannot be cancelled
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit to a pool that was shut down")
            alive = [w for w in self._workers if not w.dead]
            if not alive:
                raise BrokenProcessPool("every image-check worker has ended")
            worker = min(alive, key=lambda w: len(w.pending))
        worker.send(fut, fn, args)
        return fut

    def terminate(self) -> None:
        """Kill the workers now (a batch still decoding is abandoned)."""
        for w in self._workers:
            if w.proc.poll() is None:
                w.proc.kill()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
        for w in self._workers:
            w.close_input()
        if cancel_futures:
            self.terminate()
        if wait:
            for w in self._workers:
                w.stop(_SHUTDOWN_WAIT_S)

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]
