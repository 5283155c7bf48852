"""Benchmark 3: overhead when the provider is instant.

Zero-latency simulator, ~48 KB images, no rate limit, concurrency 64. Three clients do the
same work in the same run, one after the other against one simulator process: the bare aiohttp
loop (the floor), the official SDK with a semaphore, and ``batchgen run`` (with its Parquet log).
Each round runs all three; ratios are taken within a round and the median over rounds kept.

Two throughputs per client: whole process (start to exit, what a user waits for, imports
and batchgen's validation and quote included) and steady state (the simulator's first to last
accepted request, start-up excluded).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from bench.clients import count_files, run_baseline, run_batchgen
from bench.jobfiles import write_jobs
from bench.metrics import Figure, Target, median, window_rate
from bench.simproc import SimProcess

JOBS = 5_000
IMAGE_KB = 48
CONCURRENCY = 64
CLIENTS = ("aiohttp", "openai", "batchgen")


def _one(client: str, jobfile: Path, sim: SimProcess, work: Path, jobs: int) -> dict[str, Any]:
    # each client writes ~240 MB: flush the last one's dirty pages first, or the kernel's
    # writeback throttling bills the previous client's files to this one
    os.sync()
    sim.reset()
    out = work / client
    if client == "batchgen":
        measured = run_batchgen(jobfile, sim.base_url, out, concurrency=CONCURRENCY)
        written = count_files(out / "images")
    else:
        measured = run_baseline(client, jobfile, sim.base_url, out, concurrency=CONCURRENCY)
        written = count_files(out)
    stats = sim.stats()
    shutil.rmtree(out, ignore_errors=True)  # 5,000 × 48 KB per client: keep the disk free
    if written != jobs or stats["outcomes"].get("ok") != jobs:
        msg = (f"bench overhead: {client} wrote {written} images for {jobs} jobs "
               f"(simulator outcomes {stats['outcomes']}); the comparison needs equal work")
        raise RuntimeError(msg)  # fmt: skip
    return {
        "wall_s": measured.wall_s,
        "cpu_s": measured.cpu_s,
        "peak_rss_mb": measured.peak_rss_mb,
        "images_per_s": jobs / measured.wall_s,
        "steady_images_per_s": window_rate(stats["accepted"], images=True) / 60.0,
    }


def bench_overhead(
    root: Path, *, jobs: int = JOBS, rounds: int = 1
) -> tuple[list[Figure], dict[str, Any]]:
    jobfile = write_jobs(root / "overhead.jsonl", jobs)
    per_round: list[dict[str, dict[str, Any]]] = []
    with SimProcess(image_kb=IMAGE_KB) as sim:
        for _ in range(rounds):
            per_round.append({c: _one(c, jobfile, sim, root / c, jobs) for c in CLIENTS})

    def ratio_median(key: str, a: str, b: str) -> float | None:
        return median([r[a][key] / r[b][key] for r in per_round])

    def value_median(client: str, key: str) -> float | None:
        return median([r[client][key] for r in per_round])

    note = f"{jobs:,} jobs, {IMAGE_KB} KB images, concurrency {CONCURRENCY}"
    figures = [
        Figure("batchgen / bare aiohttp, images/s", ratio_median("images_per_s", "batchgen",
               "aiohttp"), Target(">=", 0.8), "×", note + ", whole process"),
        Figure("batchgen / openai SDK, images/s", ratio_median("images_per_s", "batchgen",
               "openai"), Target(">=", 2.5), "×", "whole process"),
        Figure("  steady state: batchgen / bare", ratio_median("steady_images_per_s",
               "batchgen", "aiohttp"), unit="×", note="first to last accepted request"),
        Figure("  steady state: batchgen / SDK", ratio_median("steady_images_per_s",
               "batchgen", "openai"), unit="×"),
    ]  # fmt: skip
    for client in CLIENTS:
        figures.append(Figure(f"  {client}: images/s (CPU ms/image)",
                              value_median(client, "images_per_s"), unit="img/s",
                              note=f"{1000 * (value_median(client, 'cpu_s') or 0) / jobs:.2f} "
                                   "ms CPU per image"))  # fmt: skip
    return figures, {"rounds": per_round}


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        figs, details = bench_overhead(Path(tmp))
        print(json.dumps([f.as_dict() for f in figs], indent=1))
