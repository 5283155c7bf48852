"""A local Ray cluster for the tests and the benchmarks: a head and one worker node on
loopback (``ray.cluster_utils.Cluster``). Their workers inherit the environment they start
in, so ``key`` is set as OPENAI_API_KEY while they start and restored after: a cluster's
nodes hold the key in their environment, batchgen never sends it through Ray."""

from __future__ import annotations

import os
from typing import Any


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
