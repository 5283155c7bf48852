"""Money: prices as data (``data/prices.toml``), cost per attempt, model constraints, the
quote ``plan`` and ``run`` show, and the hard budget cap.

    load_prices(override, fallback_per_image=) -> PriceTable     (raises PricesError)
    cost_of_attempt(prices, job, usage, images_returned) -> (usd | None, source)
    image_usd(prices, model, quality, size) -> usd | None        (one image's output, auto resolved)
    check_job(prices, job) -> list[str]
    quote(jobs, prices, rpm=, ipm=, concurrency=, assume_latency=) -> Quote
    quote_to_dict(quote) -> dict      (the terminal rendering is batchgen.cli.quote)
    Budget(cap_usd, spent_before, prices, price_per_image) .reserve(job) -> Reservation | None
"""

from batchgen.money.budget import Budget, BudgetError, Reservation
from batchgen.money.constraints import check_job
from batchgen.money.cost import (
    SOURCE_NONE,
    SOURCE_TABLE,
    SOURCE_UNKNOWN,
    SOURCE_USAGE,
    Estimate,
    cost_of_attempt,
    estimate_job,
    image_usd,
    worst_case_usd,
)
from batchgen.money.load import PricesError, load_prices
from batchgen.money.quote import Quote, QuoteLine, WallTime, quote, quote_to_dict
from batchgen.money.table import Constraints, ModelPrice, PriceTable

__all__ = [
    "SOURCE_NONE",
    "SOURCE_TABLE",
    "SOURCE_UNKNOWN",
    "SOURCE_USAGE",
    "Budget",
    "BudgetError",
    "Constraints",
    "Estimate",
    "ModelPrice",
    "PriceTable",
    "PricesError",
    "Quote",
    "QuoteLine",
    "Reservation",
    "WallTime",
    "check_job",
    "cost_of_attempt",
    "estimate_job",
    "image_usd",
    "load_prices",
    "quote",
    "quote_to_dict",
    "worst_case_usd",
]
