"""Run a child process and measure it: wall time, CPU time and peak RSS of that one child.

``os.wait4`` returns the child's own rusage (``RUSAGE_CHILDREN`` would fold in every child
the harness ever had, the simulator included), so each figure belongs to the process it names.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Measured:
    returncode: int
    wall_s: float
    cpu_s: float  # user + system
    peak_rss_mb: float
    stdout: str
    stderr: str

    def check(self, what: str) -> Measured:
        """Raise with the child's last words when it failed."""
        if self.returncode != 0:
            tail = (self.stderr or self.stdout)[-1500:]
            msg = f"bench: {what} exited with {self.returncode}; its last output:\n{tail}"
            raise RuntimeError(msg)
        return self


def run_measured(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 600.0,
) -> Measured:
    """Run ``cmd`` to the end (killed after ``timeout_s``) and measure it."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=cwd)
        status, usage = _wait(proc, timeout_s)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Measured(
            returncode=os.waitstatus_to_exitcode(status),
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            # Linux reports ru_maxrss in KiB
            peak_rss_mb=usage.ru_maxrss / 1024.0,
            stdout=out.read(),
            stderr=err.read(),
        )


def _wait(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, os.struct_rusage]:
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            # reaped here, so tell Popen it is gone (its own wait would find no child)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, usage
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.02)
