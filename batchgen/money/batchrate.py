"""The Batch API's prices: the live table with every rate scaled by the model's ``batch_rate``.

    batch_table(prices) -> PriceTable

Every cost function (cost of an attempt from ``usage``, the quote, the budget's worst case)
then works unchanged on the batch table. A model without ``batch_rate`` is left out of it,
so its batch cost is ``unknown`` (and ``--max-cost`` refuses it unless ``--price-per-image``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from batchgen.money.table import ModelPrice, PriceTable

_RATES = (
    "text_input_per_1m",
    "image_input_per_1m",
    "image_output_per_1m",
    "cached_text_input_per_1m",
    "cached_image_input_per_1m",
)


def batch_price(entry: ModelPrice) -> ModelPrice | None:
    """One model's batch price, or None when the table has no batch rate for it."""
    rate = entry.batch_rate
    if rate is None:
        return None
    scaled: dict[str, Any] = {}
    for key in _RATES:
        value = getattr(entry, key)
        if value is not None:
            scaled[key] = value * rate
    if entry.per_image:
        scaled["per_image"] = {
            q: {s: usd * rate for s, usd in by_size.items()}
            for q, by_size in entry.per_image.items()
        }
    return dataclasses.replace(
        entry,
        source=entry.batch_source or entry.source,
        as_of=entry.batch_as_of or entry.as_of,
        **scaled,
    )


def batch_table(prices: PriceTable) -> PriceTable:
    models = {}
    for name, entry in prices.models.items():
        scaled = batch_price(entry)
        if scaled is not None:
            models[name] = scaled
    fallback = prices.fallback_per_image
    return dataclasses.replace(prices, models=models, fallback_per_image=fallback)
