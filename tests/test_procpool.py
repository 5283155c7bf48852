"""The image checks' worker processes (batchgen.checks.procpool): batchgen's own subprocesses,
in their own session (the terminal's Ctrl-C is not theirs), never the caller's __main__; a
worker that dies fails its own tasks only; shutdown leaves no process behind."""

from __future__ import annotations

import os
import signal
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from PIL import Image

from batchgen.checks.procpool import WorkerPool
from batchgen.checks.worker import run_batch, warm

pytestmark = pytest.mark.timeout(60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_measure_in_their_own_session_and_end_with_the_pool(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "images" / "a.png")
    pool = WorkerPool(2, nice=False)
    pids = pool.pids
    try:
        assert [f.result(30) for f in [pool.submit(warm) for _ in range(4)]] == [None] * 4
        for pid in pids:  # not in the caller's session or process group: no terminal Ctrl-C
            assert os.getsid(pid) != os.getsid(0) and os.getpgid(pid) != os.getpgid(0)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert b"batchgen.checks.worker" in cmdline
        (m,) = pool.submit(
            run_batch, str(tmp_path), [("images/a.png", "images/a.png")], 16, 8
        ).result(30)
        assert (m.path, m.width, m.height, m.error) == ("images/a.png", 40, 30, None)
        # one worker killed: its tasks fail, the other worker goes on
        os.kill(pids[0], signal.SIGKILL)
        results = []
        for _ in range(6):
            try:
                results.append(pool.submit(warm).result(30))
            except BrokenProcessPool:
                results.append("broken")
        assert results.count(None) >= 5
    finally:
        pool.shutdown(wait=True)
    assert not any(_alive(pid) for pid in pids)


def test_only_batchgen_functions_run_in_a_worker() -> None:
    pool = WorkerPool(1, nice=False)
    try:
        with pytest.raises(RuntimeError, match="not a batchgen function"):
            pool.submit(os.getcwd).result(30)
        assert pool.submit(warm).result(30) is None  # the worker lives on
    finally:
        pool.shutdown(wait=True)
