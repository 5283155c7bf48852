"""Cheaper settings with the projected saving, from the price table.

The price table belongs to ``batchgen.money``; this module only asks it for a price per image
behind a small lookup function, and degrades to "no recommendation" when no table can be read,
so a report never fails over prices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from batchgen.analyze.model import CostGroup
from batchgen.money import load_prices
from batchgen.money.batchrate import batch_table

PriceLookup = Callable[[str, str, str], float | None]
"""(model, quality, size) → USD per image, or None when the table does not know it."""

# Cheaper steps to try, in the order a user would accept them: same model at a lower quality,
# then a cheaper model of the same family at the same quality.
QUALITY_DOWN = {"high": "medium", "medium": "low", "hd": "standard", "auto": "medium"}
MODEL_DOWN = {
    "gpt-image-1": "gpt-image-1-mini",
    "gpt-image-1.5": "gpt-image-1-mini",
    "gpt-image-2": "gpt-image-1",
    "dall-e-3": "dall-e-2",
}


def default_price_lookup(override: str | None = None, *, batch: bool = False) -> PriceLookup | None:
    """USD per image from ``batchgen.money``'s table (the output-image part, which is what a
    cheaper quality or model changes), or None when no table can be read. ``batch``: at the
    Batch API's rates (a ``--via batch`` run is advised in the prices it pays)."""
    try:
        prices = load_prices(override)
        if batch:
            prices = batch_table(prices)
    except Exception:  # no table, or a malformed override: the report goes on without prices
        return None

    def lookup(model: str, quality: str, size: str) -> float | None:
        entry = prices.get(model)
        if entry is None:
            return None
        if entry.billing == "tokens":
            tokens = entry.image_output_tokens(quality, size)
            return entry.image_output_usd(tokens) if tokens is not None else None
        return entry.image_price(quality, size)

    return lookup


def cheaper_options(
    groups: Iterable[CostGroup], lookup: PriceLookup | None
) -> list[dict[str, Any]]:
    """For each (model, quality, size) group that produced images, the cheaper step with the
    larger projected saving on this run's image count."""
    if lookup is None:
        return []
    out = []
    for g in groups:
        model, quality, size, images = g.model, g.quality, g.size, g.images
        if not images:
            continue
        now = lookup(model, quality, size)
        if now is None:
            continue
        steps = []
        if quality in QUALITY_DOWN:
            steps.append((model, QUALITY_DOWN[quality]))
        if model in MODEL_DOWN:
            steps.append((MODEL_DOWN[model], quality))
        best: dict[str, Any] | None = None
        for m, q in steps:
            price = lookup(m, q, size)
            if price is None or price >= now:
                continue
            saving = (now - price) * images
            if best is None or saving > best["saving_usd"]:
                best = {
                    "model": m,
                    "quality": q,
                    "size": size,
                    "price_usd": price,
                    "saving_usd": saving,
                }
        if best is not None:
            out.append(
                {
                    "from": {
                        "model": model,
                        "quality": quality,
                        "size": size,
                        "price_usd": now,
                        "images": images,
                    },
                    "to": best,
                }
            )
    return sorted(out, key=lambda o: -o["to"]["saving_usd"])
