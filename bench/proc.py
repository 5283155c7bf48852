"""Run a child process and measure it: wall time, CPU time and peak RSS of that one child.

CPU time comes from ``os.wait4`` (the child's own rusage; ``RUSAGE_CHILDREN`` would fold in
every child the harness ever had, the simulator included). Peak RSS does not: Linux carries
``ru_maxrss`` across exec, so a child forked from a big harness reports the harness's size.
``VmHWM`` in /proc/PID/status belongs to the exec'd image alone; it is a high-water mark, so
polling it loses nothing but the last poll interval before exit.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# children run ``python -m bench....``: from the repository root whatever the caller's cwd
REPO = Path(__file__).resolve().parents[1]
_POLL_S = 0.02


@dataclass(frozen=True, slots=True)
class Measured:
    returncode: int
    wall_s: float
    cpu_s: float  # user + system
    sys_s: float  # system (kernel) time alone: file writes show up here
    peak_rss_mb: float
    stdout: str
    stderr: str

    def check(self, what: str, ok: tuple[int, ...] = (0,)) -> Measured:
        """Raise with the child's last words when it exited with a status not in ``ok``."""
        if self.returncode not in ok:
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
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=cwd or REPO)
        status, usage, hwm_kb = _wait(proc, timeout_s)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Measured(
            returncode=os.waitstatus_to_exitcode(status),
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            sys_s=usage.ru_stime,
            # KiB, as Linux reports both; ru_maxrss only when the child ended before one poll
            peak_rss_mb=(hwm_kb or usage.ru_maxrss) / 1024.0,
            stdout=out.read(),
            stderr=err.read(),
        )


def _wait(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, os.struct_rusage, int]:
    deadline = time.monotonic() + timeout_s
    status_file = Path(f"/proc/{proc.pid}/status")
    hwm_kb = 0
    while True:
        hwm_kb = max(hwm_kb, _vm_hwm_kb(status_file))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            # reaped here, so tell Popen it is gone (its own wait would find no child)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, usage, hwm_kb
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(_POLL_S)


def _vm_hwm_kb(status_file: Path) -> int:
    try:
        text = status_file.read_text()
    except OSError:  # gone, or a zombie being reaped
        return 0
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0  # a zombie has no memory map left
