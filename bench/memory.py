"""Benchmark 4: memory does not grow with the job file.

Peak RSS of the ``batchgen run`` process (its own rusage, from wait4) for a 100,000-job file
against a 10,000-job file, zero latency, tiny images, no rate limit.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench.clients import run_batchgen
from bench.jobfiles import write_jobs
from bench.metrics import Figure, Target
from bench.simproc import SimProcess

SMALL, LARGE = 10_000, 100_000


def bench_memory(
    root: Path, small: int = SMALL, large: int = LARGE
) -> tuple[list[Figure], dict[str, Any]]:
    peaks: dict[int, float] = {}
    walls: dict[int, float] = {}
    with SimProcess(tiny=True) as sim:
        for count in (small, large):
            jobfile = write_jobs(root / f"memory-{count}.jsonl", count)
            run_dir = root / f"memory-{count}"
            sim.reset()
            measured = run_batchgen(jobfile, sim.base_url, run_dir, timeout_s=400)
            done = sim.stats(timeline=False)["outcomes"].get("ok", 0)
            shutil.rmtree(run_dir, ignore_errors=True)
            if done != count:
                msg = f"bench memory: the simulator served {done} of {count} jobs; see its stats"
                raise RuntimeError(msg)
            peaks[count] = measured.peak_rss_mb
            walls[count] = measured.wall_s
    figures = [
        Figure(
            f"peak RSS {large // 1000}k jobs / {small // 1000}k jobs",
            peaks[large] / peaks[small],
            Target("<=", 1.2),
            "×",
            f"{peaks[small]:.0f} MB vs {peaks[large]:.0f} MB",
        ),
        Figure(f"peak RSS, {large // 1000}k jobs", peaks[large], Target("<=", 300.0), "MB", ""),
    ]
    return figures, {"peak_rss_mb": peaks, "wall_s": walls}
