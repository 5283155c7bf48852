"""The hard budget cap: worst-case reservations, settlement, and the never-exceeded guarantee."""

from __future__ import annotations

import random

import anyio
import anyio.lowlevel
import pytest

from batchgen.jobs.model import Job
from batchgen.money import Budget, BudgetError, load_prices, worst_case_usd


@pytest.fixture(scope="module")
def prices():
    return load_prices()


def dalle3(i: int, size: str = "1024x1024") -> Job:
    return Job.make(f"d{i}", i, {"prompt": "p", "model": "dall-e-3", "size": size})


def test_reserve_until_the_cap_then_refuse(prices):
    budget = Budget(0.25, 0.0, prices, None)  # dall-e-3 1024² worst case: hd, $0.08
    held = [budget.reserve(dalle3(i)) for i in range(3)]
    assert all(held) and budget.reserved == pytest.approx(0.24)
    assert budget.reserve(dalle3(4)) is None
    assert budget.refused == 1
    held[0].settle(0.04)  # it came back standard: $0.04 of the $0.08 is freed
    assert budget.spent == pytest.approx(0.04) and budget.reserved == pytest.approx(0.16)
    assert budget.remaining == pytest.approx(0.05)
    assert budget.reserve(dalle3(5)) is None  # 0.04 + 0.16 + 0.08 > 0.25
    held[1].release()
    assert budget.reserve(dalle3(6)) is not None


def test_spent_before_counts_against_the_cap(prices):
    budget = Budget(1.0, 0.95, prices, None)
    assert budget.reserve(dalle3(1)) is None
    assert Budget(1.0, 0.92, prices, None).reserve(dalle3(1)) is not None


def test_exact_fit_is_allowed_despite_float_sums(prices):
    job = Job.make("a", 1, {"prompt": "p", "model": "sora_image", "n": 1})  # $0.01 each
    budget = Budget(0.3, 0.0, prices, None)
    held = [budget.reserve(job) for _ in range(30)]
    assert all(held) and budget.reserve(job) is None
    for r in held:
        r.settle(0.01)
    assert budget.spent == pytest.approx(0.3) and budget.spent <= 0.3


def test_reserve_holds_the_worst_case(prices):
    job = Job.make("a", 1, {"prompt": "x" * 40, "model": "gpt-image-1", "n": 2})
    budget = Budget(None, 0.0, prices, None)
    r = budget.reserve(job)
    assert r.amount_usd == pytest.approx(40 * 5e-6 + 2 * 6240 * 40e-6)
    assert r.amount_usd == pytest.approx(worst_case_usd(prices, job))


def test_no_cap_only_tracks(prices):
    budget = Budget(None, 1.5, prices, None)
    r = budget.reserve(Job.make("a", 1, {"prompt": "p", "model": "mystery"}))
    assert r is not None and budget.remaining is None
    r.settle(None)  # unknown cost, no cap: nothing to charge
    assert budget.spent == pytest.approx(1.5)


def test_unknown_model_with_a_cap_is_refused_before_the_run(prices):
    budget = Budget(10.0, 0.0, prices, None)
    with pytest.raises(BudgetError) as info:
        budget.require_priced(["gpt-image-1", "mystery-b", "mystery-a", "mystery-a"])
    message = str(info.value)
    assert "mystery-a, mystery-b" in message and "--price-per-image" in message
    with pytest.raises(BudgetError, match="line 7"):
        budget.reserve(Job.make("m", 7, {"prompt": "p", "model": "mystery-a"}))
    Budget(None, 0.0, prices, None).require_priced(["mystery-a"])  # no cap: fine


def test_price_per_image_prices_unknown_models(prices):
    budget = Budget(1.0, 0.0, prices, 0.3)
    budget.require_priced(["mystery"])
    job = Job.make("m", 1, {"prompt": "p", "model": "mystery", "n": 2})
    assert budget.reserve(job).amount_usd == pytest.approx(0.6)
    assert budget.reserve(job) is None


def test_unknown_actual_charges_the_reservation(prices):
    budget = Budget(1.0, 0.0, prices, None)
    budget.reserve(dalle3(1)).settle(None)
    assert budget.spent == pytest.approx(0.08)


def test_settle_twice_is_a_bug(prices):
    r = Budget(1.0, 0.0, prices, None).reserve(dalle3(1))
    r.settle(0.04)
    with pytest.raises(BudgetError, match="settled twice"):
        r.settle(0.04)


def test_an_overrun_raises_later_reservations(prices):
    budget = Budget(10.0, 0.0, prices, None)
    r = budget.reserve(dalle3(1))
    r.settle(0.16)  # the provider billed twice the table's worst case
    assert budget.reserve(dalle3(2)).amount_usd == pytest.approx(0.16)


def test_bad_cap_is_refused(prices):
    with pytest.raises(BudgetError, match="--max-cost"):
        Budget(-1.0, 0.0, prices, None)


def test_exhausted_message_says_how_to_continue(prices):
    budget = Budget(0.15, 0.0, prices, None)
    budget.reserve(dalle3(1)).settle(0.04)
    assert budget.reserve(dalle3(2)) is not None  # 0.04 + 0.08 held
    assert budget.reserve(dalle3(3)) is None
    message = budget.exhausted_message("runs/x", remaining_usd=2.0)
    assert "spent $0.0400 of --max-cost $0.15 ($0.0800 still held" in message
    assert "1 job was not sent because its worst case" in message
    assert "batchgen resume runs/x --max-cost 2.04" in message
    assert "batchgen resume RUN_DIR --max-cost 0.30" in budget.exhausted_message()


def _random_job(rng: random.Random, i: int) -> Job:
    model = rng.choice(["gpt-image-1", "gpt-image-1-mini", "dall-e-3", "dall-e-2", "sora_image"])
    body: dict = {"prompt": "z" * rng.randint(1, 400), "model": model}
    if model.startswith("gpt"):
        body |= {"n": rng.randint(1, 10), "quality": rng.choice([None, "low", "high", "auto"])}
        body["size"] = rng.choice([None, "auto", "1024x1536", "1536x1024"])
    elif model == "dall-e-2":
        body |= {"n": rng.randint(1, 10), "size": rng.choice(["256x256", "1024x1024"])}
    return Job.make(f"r{i}", i, body)


@pytest.mark.parametrize("seed", range(20))
def test_spent_never_exceeds_cap_under_any_interleaving(prices, seed):
    """Random reserve/settle sequences; actual ≤ reserved ⇒ spent ≤ cap at every step."""
    rng = random.Random(seed)
    cap = rng.uniform(0.05, 20.0)
    budget = Budget(cap, rng.uniform(0.0, cap / 3), prices, None)
    open_: list = []
    refused = 0
    for i in range(600):
        if open_ and rng.random() < 0.45:
            r = open_.pop(rng.randrange(len(open_)))
            # anything from nothing to exactly the reservation (the boundary is the hard case)
            actual = rng.choice([0.0, r.amount_usd, rng.uniform(0, r.amount_usd)])
            r.settle(actual)
        else:
            r = budget.reserve(_random_job(rng, i))
            if r is None:
                refused += 1
            else:
                open_.append(r)
        assert budget.spent <= cap + 1e-12
        assert budget.spent + budget.reserved <= cap + 1e-9
    for r in open_:
        r.settle(r.amount_usd)
    assert budget.spent <= cap + 1e-12 and budget.reserved == 0
    assert refused > 0  # the cap was actually reached


def test_concurrent_workers_on_one_loop_never_pass_the_cap(prices):
    """Many tasks reserving and settling with awaits in between: the check-and-reserve is atomic."""
    budget = Budget(1.0, 0.0, prices, None)
    sent: list[float] = []

    async def worker(k: int) -> None:
        rng = random.Random(k)
        for i in range(20):
            job = dalle3(k * 100 + i, rng.choice(["1024x1024", "1792x1024"]))
            r = budget.reserve(job)
            if r is None:
                await anyio.lowlevel.checkpoint()
                continue
            await anyio.lowlevel.checkpoint()  # "the request": other workers run here
            actual = rng.choice([0.04, 0.08, 0.12]) if job.size != "1024x1024" else 0.04
            actual = min(actual, r.amount_usd)
            sent.append(actual)
            r.settle(actual)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for k in range(16):
                tg.start_soon(worker, k)

    anyio.run(main)
    assert budget.spent == pytest.approx(sum(sent))
    assert budget.spent <= 1.0 and budget.refused > 0 and budget.reserved == 0
