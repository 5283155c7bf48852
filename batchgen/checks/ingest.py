"""Image checks while the run goes: each saved image is measured on a worker pool, the
results stored beside the log (``checks/``, see store.py), so a report only reads them.

The hot path is ``submit(paths, images)``, called by the pool right after ``save_images`` on
the event loop: it appends (path, size) to a bounded backlog and wakes the dispatcher thread
when it waits for work (a few µs; no I/O, no hashing, no pickling). When the backlog is full
the images are not queued, only counted: checking never slows the run down. The dispatcher
thread hands batches to the workers, collects their measurements and writes them every
``flush_s``.

Workers are processes by default: decoding and the numpy maths hold the GIL in parts, and
threads would take it from the event loop (thread workers delay the loop's timers more than
process workers do: docs/bench.md, "Figures moved out of the code"). Workers are
batchgen's own subprocesses (procpool.py), not multiprocessing's: those re-run the caller's
script. They run at the lowest CPU priority (nice 19), and the dispatcher hands them nothing
while the event loop's thread wants a CPU (loopload.py: a very fast provider, or a machine
busy with other work), so the run keeps its cores and the backlog grows instead. The workers
start only once they can work (the loop not busy), so a CPU-bound session defers its checks
without paying for their start; one starts, and another only while the backlog outgrows
those started (each costs ~0.2 s of CPU to start). A process worker reads the image back from
the page cache (just written); a thread worker (``kind="thread"``, for comparison) is given
the bytes.

``finish()`` after the last request: measures what is still queued for at most
``finish_share`` of the session's duration (capped at ``finish_cap_s``; Ctrl-C ends it at
once), stores every result and stops the workers. Images left unmeasured — queued past the
deadline, dropped from a full backlog, or lost to a kill -9 — have no stored row: the report
measures them (and stores the results), so each image is measured once.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.checks.loopload import LOAD_SAMPLE_S, LoopLoad
from batchgen.checks.procpool import WorkerPool
from batchgen.checks.record import HASH_SIZE, THUMB_PX, Measured
from batchgen.checks.store import ChecksWriter, StoredKeys, compact
from batchgen.checks.worker import run_batch, warm

log = logging.getLogger(__name__)

BACKLOG = 20_000  # queued images (a path and a size each: ~2 MB)
BATCH = 8  # images per task: amortises the pickling and pipe round trip of a task
# the workers (processes importing numpy and Pillow: ~0.3 s of CPU each) start once this many
# images wait; a smaller session leaves its few images to the report, which checks a handful
# in its own process
START_AFTER = 48
# one worker starts; another when, at two looks GROW_EVERY_S apart, the backlog held this many
# images per worker started and had not shrunk (a worker measures ~100 PNGs of 1024² a second:
# such a backlog is not being kept up with; one piled up during a pause is drained instead)
GROW_BACKLOG = 4 * 48
GROW_EVERY_S = 2.0
_monotonic = time.monotonic  # the growth rule's clock (a test sets it)
FLUSH_S = 2.0
FLUSH_ROWS = 4_000
FINISH_SHARE = 0.05  # after the last request, check for at most 5% of the session's time ...
FINISH_CAP_S = 60.0  # ... and never more than this
MIN_FINISH_TO_START_S = 2.0  # workers not started yet: not worth starting for less


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def make_executor(
    kind: str, workers: int, *, nice: bool = True, start: int | None = None
) -> cf.Executor:
    """``start``: process workers started at once (all by default; the others on ``grow``).
    A thread pool starts its threads as tasks come anyway."""
    if kind == "thread":
        return cf.ThreadPoolExecutor(workers, thread_name_prefix="image-check")
    # not multiprocessing: its spawned children re-run the caller's __main__ (procpool.py)
    return WorkerPool(workers, nice=nice, start=start)


def _started(executor: cf.Executor, workers: int) -> int:
    return executor.size if isinstance(executor, WorkerPool) else workers


@dataclass(frozen=True, slots=True)
class IngestStats:
    submitted: int  # images handed to submit()
    measured: int  # measured and stored by this session ...
    measured_after_end: int  # ... of which in finish(), after the last request
    skipped: int  # already had a stored measurement (resume of an adopted image)
    dropped: int  # not queued: the backlog was full
    deferred: int  # queued but not measured by the end of finish(): left to the report
    failed_batches: int
    finish_s: float  # spent in finish()
    paused_share: float  # of the run's time, dispatching paused: the event loop was busy
    loop_busy: float | None  # the event loop thread's mean CPU use while requests went
    where: str  # "background", "deferred" (nothing measured) or "off"

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


class IngestChecker:
    """Measure saved images in the background. ``start()`` once, ``submit()`` from the event
    loop, ``finish()`` at the end of the session (or ``close()`` to stop at once)."""

    def __init__(
        self,
        run_dir: Path | str,
        session: int,
        *,
        workers: int | None = None,
        kind: str = "process",
        backlog: int = BACKLOG,
        batch: int = BATCH,
        flush_s: float = FLUSH_S,
        finish_share: float = FINISH_SHARE,
        finish_cap_s: float = FINISH_CAP_S,
        start_after: int = START_AFTER,
        thumb_px: int = THUMB_PX,
        hash_size: int = HASH_SIZE,
    ) -> None:
        self._start_after = max(1, start_after)
        # absolute, once: the workers join logged paths to it, and the caller may chdir
        self.run_dir = os.path.abspath(run_dir)
        self.kind = kind
        self.workers = workers or default_workers()
        self._max_backlog = backlog
        self._batch = batch
        self._flush_s = flush_s
        self._finish_share = finish_share
        self._finish_cap_s = finish_cap_s
        self._params = (thumb_px, hash_size)
        self._writer = ChecksWriter.for_session(
            run_dir, session, thumb_px=thumb_px, hash_size=hash_size
        )
        self._backlog: collections.deque[tuple[str, Any]] = collections.deque()
        self._wake = threading.Event()
        self._idle = False  # the dispatcher waits for work (not paused, nothing queued)
        self._closed = False  # no more submits
        self._deadline: float | None = None  # set by finish(): stop dispatching after it
        self._abort = False
        self._thread: threading.Thread | None = None
        self._started_at = time.monotonic()
        self._load = LoopLoad(threading.get_ident())  # built on the event loop's thread
        self.submitted = self.dropped = self.measured = self.skipped = self.failed_batches = 0
        self.deferred = 0
        self.measured_by_end = 0  # measured before finish() began (while requests went)
        self.finish_s = 0.0
        self.started_workers = 0  # worker processes (or threads allowed) started
        self._grow_look = (0.0, float("inf"))  # when the backlog was last looked at, its length
        self.error: BaseException | None = None

    # ---- the hot path (event loop) -----------------------------------------------------
    def submit(self, paths: Sequence[str], images: Sequence[Any]) -> None:
        """``images``: the ImageData (or bytes) just saved under ``paths``."""
        if self._closed:
            return
        n = len(paths)
        self.submitted += n
        if len(self._backlog) + n > self._max_backlog:
            self.dropped += n
            return
        if self.kind == "thread":
            self._backlog.extend(zip(paths, (getattr(i, "data", i) for i in images), strict=True))
        else:
            sizes = (len(getattr(i, "data", i)) for i in images)
            self._backlog.extend(zip(paths, sizes, strict=True))
        if self._idle:  # only a dispatcher waiting for work is woken: a wake-up takes the GIL
            self._idle = False
            self._wake.set()

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> IngestChecker:
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="image-checks", daemon=True)
        self._thread.start()
        return self

    def finish(self, budget_s: float | None = None) -> IngestStats:
        """Measure what is queued for at most ``budget_s`` (default: a share of the session's
        time), store every result, stop the workers. Ctrl-C ends the wait at once."""
        t0 = time.monotonic()
        if budget_s is None:
            budget_s = min(self._finish_cap_s, self._finish_share * (t0 - self._started_at))
        self._closed = True
        self._load.stop()  # the requests are over: the loop's load no longer matters
        self.measured_by_end = self.measured
        self._deadline = t0 + max(0.0, budget_s)
        self._wake.set()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.05)
        except KeyboardInterrupt:
            self.close()
        self.finish_s = time.monotonic() - t0
        return self.stats()

    def close(self) -> None:
        """Stop now: no waiting for queued images (what was measured is still stored)."""
        self._closed = True
        self._abort = True
        self._deadline = time.monotonic()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10.0)

    def stats(self) -> IngestStats:
        left = self.dropped + self.deferred
        if not self.submitted:
            where = "background"
        elif self.measured == 0:
            where = "deferred"  # all of it left to the report
        elif left:
            where = "background, partly deferred"
        else:
            where = "background"
        return IngestStats(
            self.submitted,
            self.measured,
            self.measured - self.measured_by_end,
            self.skipped,
            self.dropped,
            self.deferred,
            self.failed_batches,
            round(self.finish_s, 3),
            round(self._load.paused_share(), 3),
            self._load.mean_busy(),
            where,
        )

    # ---- the dispatcher thread -------------------------------------------------------------
    def _run(self) -> None:
        executor: cf.Executor | None = None
        inflight: dict[cf.Future[list[Measured]], int] = {}  # future → images in it
        last_flush = time.monotonic()
        known: dict[str, int] = {}
        try:
            while True:
                if (
                    executor is None
                    and len(self._backlog) >= self._start_after
                    and not self._abort
                    and self._may_start()
                ):
                    # measured before (an adopted image of a resumed run): not again
                    known = StoredKeys.load(self.run_dir, *self._params).sizes
                    # one worker; more while the backlog outgrows those started (_grow)
                    executor = make_executor(self.kind, self.workers, start=1)
                    self._grow_look = (time.monotonic(), float("inf"))
                    for _ in range(_started(executor, self.workers)):  # warm, nice'd, now
                        executor.submit(warm)
                past = self._deadline is not None and time.monotonic() >= self._deadline
                if past or self._abort:
                    # bounded: batches still running are abandoned, the report measures them
                    for fut in [f for f in inflight if f.done()]:
                        del inflight[fut]
                        self._collect(fut)
                    self.deferred += sum(inflight.values())
                    inflight.clear()
                    break
                if executor is not None and not self._load.paused():
                    self._grow(executor)
                    started = _started(executor, self.workers)
                    while len(inflight) < 2 * started and self._backlog:
                        items = self._take(known)
                        if items:
                            fut = executor.submit(run_batch, self.run_dir, items, *self._params)
                            inflight[fut] = len(items)
                if inflight:
                    timeout = max(0.001, min(self._flush_s, self._until_deadline()))
                    done, _ = cf.wait(inflight, timeout=timeout, return_when=cf.FIRST_COMPLETED)
                    for fut in done:
                        del inflight[fut]
                        self._collect(fut)
                elif self._deadline is not None and (not self._backlog or executor is None):
                    break  # finishing, and nothing left (or too little to start workers for)
                else:
                    if self._load.is_paused or not self._load.sampled:  # sample after a nap
                        nap = LOAD_SAMPLE_S
                    else:
                        nap = self._flush_s
                        self._idle = executor is None or not self._backlog
                    self._wake.wait(max(0.001, min(nap, self._until_deadline())))
                    self._wake.clear()
                    self._idle = False
                now = time.monotonic()
                if self._writer.pending >= FLUSH_ROWS or (
                    self._writer.pending and now - last_flush >= self._flush_s
                ):
                    self._writer.flush()
                    last_flush = now
        except BaseException as exc:
            self.error = exc
            log.warning("image checks stopped: %s", exc)
        finally:
            self.deferred += len(self._backlog)
            self._backlog.clear()
            try:
                self._writer.flush(origin="finish" if self._deadline is not None else None)
                compact(self.run_dir)  # a long run's many parts become one file
            except Exception as exc:
                self.error = exc
                log.warning("storing image checks failed: %s", exc)
            if executor is not None:
                self.started_workers = _started(executor, self.workers)
                _stop(executor, abandon=bool(inflight) or self.deferred > 0)

    def _may_start(self) -> bool:
        """Start the workers (~0.3 s of CPU each to import numpy and Pillow) only when they
        can work: while requests go, once the loop's load was sampled and is low; after the
        last request, only with time enough left to be worth it."""
        if self._deadline is not None:
            return self._until_deadline() >= MIN_FINISH_TO_START_S
        paused = self._load.paused()  # takes a sample when one is due
        return self._load.sampled and not paused

    def _grow(self, executor: cf.Executor) -> None:
        """Another worker when those started do not keep up (GROW_BACKLOG): each costs ~0.2 s
        of CPU to start, which a backlog they drain does not repay (what is left at the end
        goes to the report, measured once either way)."""
        if not isinstance(executor, WorkerPool):
            return
        now = _monotonic()
        looked_at, before = self._grow_look
        if now - looked_at < GROW_EVERY_S:
            return
        backlog = len(self._backlog)
        self._grow_look = (now, backlog)
        if backlog >= max(before, GROW_BACKLOG * executor.size) and executor.grow():
            executor.submit(warm)

    def _until_deadline(self) -> float:
        return self._flush_s if self._deadline is None else self._deadline - time.monotonic()

    def _take(self, known: dict[str, int]) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = []
        # small batches while the backlog is short (latency), full ones when it is long
        want = max(1, min(self._batch, len(self._backlog) // self.workers or 1))
        while self._backlog and len(items) < want:
            path, what = self._backlog.popleft()
            size = what if isinstance(what, int) else len(what)
            if known.get(path) == size:
                self.skipped += 1
                continue
            items.append((path, path if isinstance(what, int) else what))
        return items

    def _collect(self, fut: cf.Future[list[Measured]]) -> None:
        if fut.cancelled():
            return
        try:
            measured = fut.result()
        except Exception as exc:
            self.failed_batches += 1
            log.warning("an image check batch failed: %s", exc)
            return
        self._writer.add(measured)
        self.measured += len(measured)


def _stop(executor: cf.Executor, *, abandon: bool) -> None:
    """Shut the pool down; with ``abandon``, without waiting for a batch still decoding (its
    worker processes are terminated: finish() must end within its budget)."""
    if abandon and isinstance(executor, WorkerPool):
        executor.terminate()
    executor.shutdown(wait=True, cancel_futures=True)


def start_ingest_checks(run_dir: Path | str, session: int, **kw: Any) -> IngestChecker:
    return IngestChecker(run_dir, session, **kw).start()
