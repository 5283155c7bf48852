"""The cluster's one --max-cost (batchgen.cluster.budget) without Ray: shards' ClusterBudgets
drawing chunks from one SharedBudget (the actor's state, called directly). The cluster's spend
never passes the cap under any interleaving of the shards, a shard draws once per chunk, not
per job, and what a shard did not spend goes back for the others. The same actor over a real
Ray cluster is tested in tests/test_cluster.py."""

from __future__ import annotations

import random

import pytest

from batchgen.cluster.budget import CHUNK_JOBS, NANO, ClusterBudget, SharedBudget
from batchgen.jobs.model import Job
from batchgen.money import Budget, load_prices, worst_case_usd


@pytest.fixture(scope="module")
def prices():
    return load_prices()


def _shard(shared: SharedBudget, cap: float, prices) -> ClusterBudget:
    return ClusterBudget(cap, prices, shared.draw, shared.give_back)


def _job(i: int, model: str = "dall-e-3") -> Job:
    return Job.make(f"j{i}", i, {"prompt": "p", "model": model})


def test_shards_draw_in_chunks_and_stop_at_the_clusters_cap(prices) -> None:
    per_job = worst_case_usd(prices, _job(0))  # dall-e-3 standard: $0.04
    cap = 20 * per_job
    shared = SharedBudget(round(cap * NANO))
    shards = [_shard(shared, cap, prices) for _ in range(4)]
    sent = 0
    for i in range(100):
        held = shards[i % 4].reserve(_job(i))
        if held is None:
            continue
        held.settle(per_job)
        sent += 1
    assert sent == 20  # the cluster's cap, not 4 × a share of it, and not less
    assert sum(s.spent for s in shards) <= cap + 1e-12
    # one draw covers about CHUNK_JOBS jobs: far fewer calls than jobs
    assert shared.calls - shared.refusals <= 20 / CHUNK_JOBS * 4 + 4


def test_what_a_shard_does_not_spend_goes_back_for_the_others(prices) -> None:
    per_job = worst_case_usd(prices, _job(0))
    cap = 10 * per_job
    shared = SharedBudget(round(cap * NANO))
    first, second = _shard(shared, cap, prices), _shard(shared, cap, prices)
    first.reserve(_job(0)).settle(per_job / 2)  # drew a chunk, spent half a job
    assert shared.free <= (cap - 2 * per_job) * NANO  # a chunk: more than the one job
    assert shared.free >= (cap - 3 * per_job) * NANO  # at most a quarter of what was free
    first.give_back()  # the shard ends
    assert shared.free == round((cap - per_job / 2) * NANO)
    took = [second.reserve(_job(i)) for i in range(1, 20)]
    assert sum(r is not None for r in took) == 9  # all that is left: 9.5 jobs' worth
    assert second.refused == 10


def test_a_refused_shard_with_nothing_in_flight_says_what_is_left(prices) -> None:
    per_job = worst_case_usd(prices, _job(0))
    shared = SharedBudget(round(2.5 * per_job * NANO))
    shard = _shard(shared, 2.5 * per_job, prices)
    first, second = shard.reserve(_job(0)), shard.reserve(_job(1))
    assert first is not None and second is not None
    assert shard.reserve(_job(2)) is None  # in flight: it waits for them, keeps its chunk
    first.settle(per_job)
    second.settle(per_job)
    assert shard.reserve(_job(3)) is None  # nothing in flight: the half job's worth goes back
    assert shard.remaining == pytest.approx(0.5 * per_job)
    assert shared.free == round(0.5 * per_job * NANO)


@pytest.mark.parametrize("seed", range(12))
def test_the_clusters_spend_never_passes_the_cap_under_any_interleaving(prices, seed) -> None:
    """As test_budget's interleaving test, with 2–6 shards drawing from one SharedBudget and
    now and then giving back: the sum of the shards' spend and holds stays under the cap."""
    from tests.test_budget import _random_job

    rng = random.Random(seed)
    cap = rng.uniform(0.05, 20.0)
    shared = SharedBudget(round(cap * NANO))
    shards = [_shard(shared, cap, prices) for _ in range(rng.randint(2, 6))]
    open_: list = []
    refused = 0
    for i in range(600):
        roll = rng.random()
        if open_ and roll < 0.4:
            r = open_.pop(rng.randrange(len(open_)))
            r.settle(rng.choice([0.0, r.amount_usd, rng.uniform(0, r.amount_usd)]))
        elif roll < 0.45:
            rng.choice(shards).give_back()
        else:
            r = rng.choice(shards).reserve(_random_job(rng, i))
            if r is None:
                refused += 1
            else:
                open_.append(r)
        spent = sum(s.spent for s in shards)
        assert spent + sum(s.reserved for s in shards) <= cap + 1e-9
    assert refused > 0  # the cap was reached


def test_a_single_budget_absorbs_the_shards_end(prices) -> None:
    """The driver tells a budget stop as one run's: every shard's spend and refused jobs."""
    budget = Budget(1.0, 0.25, prices)
    budget.absorb(0.5, {"j7": 0.04, "j9": 0.04})
    assert budget.spent == pytest.approx(0.75)
    message = budget.exhausted_message("runs/x")
    assert "spent $0.7500 of --max-cost $1.00" in message
    assert "2 jobs were not sent" in message
