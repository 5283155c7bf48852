"""A run spread over a Ray cluster (``batchgen run JOBS --ray [ADDRESS]``, ``batchgen.run(...,
ray=...)``): the job file's shards run as sessions of one run directory on the cluster's
workers, each the same async pool as a local run, under one limit per endpoint for the whole
cluster.

    driver.py   ClusterRun: shards, sessions, the limit actor, the shards' ends in run.json
    shards.py   one shard's session on a worker (the Ray task)
    limit.py    SharedLimit / LimitActor: the cluster's rate, send times handed out in chunks
    budget.py   SharedBudget / BudgetActor / ClusterBudget: one --max-cost, drawn in chunks
    gate.py     ClusterGate: a shard's pool gate, its sends scheduled by the limit actor

Ray is an optional extra (``pip install 'batchgen[ray]'``): nothing here is imported by a run
without ``--ray``, and ``ray`` itself only inside the functions that need it."""

from batchgen.cluster.driver import ClusterRun, refuse

__all__ = ["ClusterRun", "refuse"]
