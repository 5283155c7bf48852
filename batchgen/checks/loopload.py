"""How much the event loop's thread wants a CPU, for the image checker: while it is busy,
the checks' workers get nothing to do (they would slow the run down)."""

from __future__ import annotations

import threading
import time

# the event loop thread wanting a CPU more than this share of the time (on one or waiting for
# one, sampled every LOAD_SAMPLE_S):
# the run is CPU-bound (a very fast provider), and workers decoding beside it would slow it
# (they share the cores, their caches, their memory bandwidth) — dispatching pauses until it
# is below RESUME_BELOW, and the backlog grows instead
PAUSE_ABOVE = 0.6
RESUME_BELOW = 0.45
LOAD_SAMPLE_S = 0.25


class LoopLoad:
    """How much the event loop's thread wants a CPU: its time on a CPU plus its time waiting
    for one (Linux schedstat), over wall time, sampled at most every LOAD_SAMPLE_S by the
    dispatcher thread; ``paused()`` with hysteresis. The waiting counts: on a loaded machine a
    starved loop uses little CPU yet cannot go faster. Elsewhere the thread's CPU clock alone;
    without either, never paused."""

    def __init__(self, thread_ident: int) -> None:
        self._stat = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        self._clock: int | None = None
        if self._read_stat() is None:
            self._stat = ""
            try:
                self._clock = time.pthread_getcpuclockid(thread_ident)
            except (AttributeError, OSError):
                self._clock = None
        self._enabled = bool(self._stat) or self._clock is not None
        self._last = (time.monotonic(), self._demand() or 0.0)
        self._t0 = self._last[0]
        self.is_paused = False
        self.sampled = not self._enabled  # a first sample taken (or none possible)
        self._paused_s = 0.0
        self._busy_s = 0.0
        self._ended_at: float | None = None

    def _read_stat(self) -> float | None:
        try:
            with open(self._stat, "rb") as f:
                on_cpu, waiting = f.read().split()[:2]
        except (OSError, ValueError):
            return None
        return (int(on_cpu) + int(waiting)) / 1e9

    def _demand(self) -> float | None:
        """Seconds the thread has run or waited to run."""
        if self._stat:
            return self._read_stat()
        if self._clock is not None:
            try:
                return time.clock_gettime(self._clock)
            except OSError:
                return None
        return None

    def paused(self) -> bool:
        if not self._enabled or self._ended_at is not None:
            return False
        now = time.monotonic()
        t_prev, cpu_prev = self._last
        if now - t_prev < LOAD_SAMPLE_S:
            return self.is_paused
        cpu = self._demand()
        if cpu is None:  # the thread is gone
            self._enabled = False
            return False
        busy = (cpu - cpu_prev) / (now - t_prev)
        if self.is_paused:
            self._paused_s += now - t_prev
        self._busy_s += cpu - cpu_prev
        self._last = (now, cpu)
        self.sampled = True
        self.is_paused = busy > PAUSE_ABOVE or (self.is_paused and busy >= RESUME_BELOW)
        return self.is_paused

    def stop(self) -> None:
        if self._ended_at is None:
            self.paused()  # the last sample
            self._ended_at = time.monotonic()
            self.is_paused = False

    def paused_share(self) -> float:
        end = self._ended_at or time.monotonic()
        return self._paused_s / (end - self._t0) if end > self._t0 else 0.0

    def mean_busy(self) -> float | None:
        end = self._ended_at or time.monotonic()
        if not self._enabled and not self._busy_s:
            return None
        return round(self._busy_s / (end - self._t0), 3) if end > self._t0 else None
