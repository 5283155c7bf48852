"""A local Ray cluster for the tests and the benchmarks: a head and one worker node on
loopback (``ray.cluster_utils.Cluster``). Their workers inherit the environment they start
in, so ``key`` is set as OPENAI_API_KEY while they start and restored after: a cluster's
nodes hold the key in their environment, batchgen never sends it through Ray.

Also what tests/test_cluster.py and bench/cluster.py both run and measure: a cluster run's
flags, the command of one with the shared limit switched off, and its send rates."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from batchgen.runlog.reader import read_log


def local_cluster(key: str, cpus_per_node: int = 2) -> Any:
    """A head and a worker node of ``cpus_per_node`` CPUs each on 127.0.0.1; the caller
    shuts it down (``.shutdown()``)."""
    # lazy: Ray is an optional extra (batchgen[ray]); only the cluster tests and bench use this
    from ray.cluster_utils import Cluster

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep loopback addresses as given
    saved = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = key
    try:
        cluster = Cluster(
            initialize_head=True,
            connect=False,
            head_node_args={
                "num_cpus": cpus_per_node,
                "node_ip_address": "127.0.0.1",
                "include_dashboard": False,
            },
        )
        cluster.add_node(num_cpus=cpus_per_node, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
    finally:
        if saved is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = saved
    return cluster


def run_flags(base_url: str, run_dir: str | Path) -> list[str]:
    """`batchgen run`'s flags of a cluster run in the tests and the bench: the simulator's
    address, the cheapest images, no prompts, no limit flags (the job file and --ray go
    around them)."""
    return [
        *("--run-dir", str(run_dir), "--base-url", base_url),
        *("--model", "gpt-image-1", "--quality", "low"),
        *("--yes", "--quiet", "--no-image-checks"),
    ]


# a cluster run with the shared limit switched off (ClusterRun(shared_limit=False), which no
# flag reaches): each shard its own autopilot (rpm "-"), or its own fixed limiter at rpm
# (--rpm --no-adapt: what a per-actor qps does on Ray Data)
_UNSHARED = """
import sys
from batchgen.cluster import ClusterRun
from batchgen.config import RunConfig
from batchgen.session.start import start_run

jobs, run_dir, base_url, address, rpm = sys.argv[1:6]
flags = {"base_url": base_url, "model": "gpt-image-1", "quality": "low",
         "image_checks": False, "yes": True, "quiet": True}
if rpm != "-":
    flags.update(rpm=float(rpm), adaptive=False)
outcome = start_run(jobs, RunConfig.build(flags), run_dir=run_dir,
                    execute_plan=ClusterRun(address, shared_limit=False))
sys.exit(outcome.exit_code)
"""


def unshared_command(
    jobs: str | Path, run_dir: str | Path, base_url: str, address: str, rpm: str = "-"
) -> list[str]:
    """The command of a cluster run without the shared limit (see ``_UNSHARED``)."""
    return [sys.executable, "-c", _UNSHARED, str(jobs), str(run_dir), base_url, address, rpm]


def send_rates(run_dir: str | Path, peak_s: float = 2.0) -> dict[str, float]:
    """What a run sent, from its log: the 429 share of every attempt; the successes and the
    sends a minute between the 10th and the 90th percentile of the successful sends (after
    the ramp, before the tail); the busiest ``peak_s`` a minute (the ramp included); and
    ``ramp_s``, when that window starts."""
    log = read_log(Path(run_dir), ["status", "http_status", "started_at"]).to_pandas()
    log["t"] = (log.started_at - log.started_at.min()).dt.total_seconds()
    sent = log[log.http_status.notna()]
    ok = sent[sent.status == "ok"].t
    t10, t90 = ok.quantile(0.1), ok.quantile(0.9)
    middle = sent[(sent.t >= t10) & (sent.t < t90)]
    window = max(float(t90 - t10), 1e-9)
    busiest = int((sent.t // peak_s).value_counts().max())
    return {
        "share_429": float((sent.http_status == 429).mean()),
        "ok_per_min": float((middle.status == "ok").sum() / window * 60),
        "sent_per_min": float(len(middle) / window * 60),
        "peak_per_min": busiest / peak_s * 60,
        "ramp_s": float(t10),
    }
