"""The price table's batch rate: loaded with its source, validated, and applied to every rate."""

from __future__ import annotations

import math

import pytest

from batchgen.jobs.model import Job
from batchgen.money import PricesError, cost_of_attempt, load_prices, worst_case_usd
from batchgen.money.batchrate import batch_table
from batchgen.money.load import build_table
from batchgen.provider.base import Usage


def test_openai_image_models_are_half_price_in_batch_with_a_source() -> None:
    live = load_prices()
    batch = batch_table(live)
    for name in ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2"):
        entry, half = live.get(name), batch.get(name)
        assert entry is not None and half is not None
        assert entry.batch_rate == 0.5 and entry.batch_source and entry.batch_as_of
        assert half.image_output_per_1m == entry.image_output_per_1m / 2
        assert half.text_input_per_1m == entry.text_input_per_1m / 2
        assert half.source == entry.batch_source
    assert batch.get("dall-e-3") is None  # no batch rate in the table: unknown, not live price


def test_costs_and_worst_case_at_the_batch_rate() -> None:
    live = load_prices()
    batch = batch_table(live)
    job = Job.make(
        "j1",
        1,
        {"model": "gpt-image-1", "prompt": "a cat", "size": "1024x1024", "quality": "low", "n": 1},
    )
    usage = Usage(input_tokens=2, input_text_tokens=2, output_tokens=272)
    full = cost_of_attempt(live, job, usage, 1)[0]
    half = cost_of_attempt(batch, job, usage, 1)[0]
    assert math.isclose(half, full / 2) and math.isclose(half, (2 * 2.5 + 272 * 20) / 1e6)
    assert math.isclose(worst_case_usd(batch, job), worst_case_usd(live, job) / 2)


def test_a_bad_batch_rate_is_refused_with_the_key_path() -> None:
    doc = {
        "models": {
            "m": {
                "billing": "per_image",
                "per_image": 0.04,
                "source": "s",
                "as_of": "2025-01-01",
                "batch_rate": 2,
            }
        }
    }
    with pytest.raises(PricesError, match=r'models."m".batch_rate'):
        build_table([("x.toml", doc)])
    doc["models"]["m"]["batch_rate"] = 0.5
    with pytest.raises(PricesError, match=r"batch_source"):
        build_table([("x.toml", doc)])
