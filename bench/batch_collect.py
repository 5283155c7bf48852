"""Benchmark 7: collecting a Batch API output file of ≥ 1 GB in bounded memory.

``batchgen run --via batch`` against the simulator in a process of its own, whose batch
output is base64 JSONL of large noise images (``image_kb``): the file streams through
aiohttp in 1 MB chunks and is split into lines as it arrives, each decoded, saved atomically
and logged, so the client's peak RSS (VmHWM of the ``batchgen`` process) must not follow the
file's size. The output's size is read from the simulator (the bytes it streamed are the
lines' sum, measured by fetching the file once with a counting reader, not storing it).
"""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path
from typing import Any

from bench.clients import run_batchgen
from bench.jobfiles import write_jobs
from bench.metrics import Figure, Target
from bench.simproc import SimProcess

IMAGE_KB = 2_000  # ~2 MB PNG, ~2.7 MB of base64 per output line
JOBS = 400  # ~1.1 GB of output


def _output_bytes(base_url: str, run_dir: Path) -> int:
    """Size of the run's output file(s), streamed once from the simulator and counted."""
    import json

    state = json.loads((run_dir / "state" / "batches.json").read_text())
    total = 0
    for part in state["parts"]:
        req = urllib.request.Request(
            f"{base_url}/files/{part['output_file_id']}/content",
            headers={"Authorization": "Bearer sk-bench"},
        )
        with urllib.request.urlopen(req, timeout=600) as resp:
            while chunk := resp.read(1 << 20):
                total += len(chunk)
    return total


def bench_batch_collect(
    root: Path, jobs: int = JOBS, image_kb: float = IMAGE_KB
) -> tuple[list[Figure], dict[str, Any]]:
    jobfile = write_jobs(root / "batch-collect.jsonl", jobs)
    run_dir = root / "batch-collect"
    with SimProcess(image_kb=image_kb, batch_seconds=0.5) as sim:
        measured = run_batchgen(
            jobfile,
            sim.base_url,
            run_dir,
            timeout_s=1800,
            extra=["--via", "batch", "--poll-interval", "0.2", "--poll-max", "1"],
        )
        size = _output_bytes(sim.base_url, run_dir)
        images = sum(
            1
            for p in (run_dir / "images").iterdir()
            if not p.name.startswith(".") and p.suffix != ".json"  # not the metadata sidecars
        )
    shutil.rmtree(run_dir, ignore_errors=True)
    if images != jobs:
        msg = f"bench batch_collect: {images} images saved of {jobs} jobs"
        raise RuntimeError(msg)
    gb = size / 1e9
    figures = [
        Figure("output file collected", gb, Target(">=", 1.0), "GB", f"{jobs} lines"),
        Figure(
            "peak RSS collecting it",
            measured.peak_rss_mb,
            Target("<=", 300.0),
            "MB",
            f"{size / 1e6 / measured.wall_s:.0f} MB/s over the whole run ({measured.wall_s:.0f} s)",
        ),
    ]
    return figures, {
        "output_bytes": size,
        "peak_rss_mb": measured.peak_rss_mb,
        "wall_s": measured.wall_s,
        "cpu_s": measured.cpu_s,
    }
