"""What one attempt cost, and what one job may cost before it is sent.

Three figures per job, all from the same table lookups:
* ``expected`` — the quote: ``auto``/missing quality and size are quoted as the model's
  assumption (gpt-image: medium, 1024x1024), input text as ``ceil(len(prompt) / 4)`` tokens
  (the usual ~4 characters per token; the simulator bills exactly that);
* ``low`` / ``high`` — the cheapest and dearest quality × size the request may turn into;
* ``worst_case_usd`` — what the budget reserves: ``high`` with the prompt's UTF-8 byte length
  as its input tokens, a true upper bound since a BPE token is at least one byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from batchgen.jobs.inputs import job_input_tokens
from batchgen.jobs.model import Job
from batchgen.money.memo import remember
from batchgen.money.table import ANY, AUTO, ModelPrice, PriceTable, parse_size
from batchgen.provider.base import Usage

SOURCE_USAGE = "usage"
SOURCE_TABLE = "price-table"
SOURCE_UNKNOWN = "unknown"
SOURCE_NONE = "none"  # nothing was billed: a failed attempt


def quoted_input_tokens(prompt: str) -> int:
    """Text input tokens the quote assumes: ~4 characters per token, rounded up."""
    return math.ceil(len(prompt) / 4)


def max_input_tokens(prompt: str) -> int:
    """An upper bound on the prompt's tokens: a BPE token covers at least one byte."""
    return len(prompt.encode("utf-8"))


def cost_of_attempt(
    prices: PriceTable, job: Job, usage: Usage | None, images_returned: int
) -> tuple[float | None, str]:
    """USD billed for one attempt and where the figure comes from.

    ``usage`` (the answer's token counts) wins for token-billed models; otherwise the table is
    read by the job's quality × size × images returned (``auto`` → the model's assumption). A
    failed attempt (no images, no usage) costs 0 with source ``none``. A model missing from the
    table costs ``None`` (``unknown``) unless ``--price-per-image`` gave a fallback.
    """
    if usage is None and images_returned <= 0:
        return 0.0, SOURCE_NONE
    if usage is not None and usage.suspect:
        # the answer's token counts were not plausible (provider.usage): the table's price of
        # what was asked for (a 200 without a usable image was still billed)
        usage, images_returned = None, max(images_returned, job.n)
    setting = _setting(prices, job)
    if setting is None:
        if prices.fallback_per_image is None:
            return None, SOURCE_UNKNOWN
        return prices.fallback_per_image * max(images_returned, 0), SOURCE_TABLE
    entry = setting.entry
    if entry.billing == "tokens" and usage is not None:
        # never below the cheapest price the returned images can have: an answer claiming
        # (say) 0 output tokens must not lower the spend the budget counts
        floor = setting.low / job.n * images_returned if setting.outputs else 0.0
        return max(usage_cost(entry, usage), floor), SOURCE_USAGE
    per_image = setting.per_image_returned
    if per_image is None:
        return None, SOURCE_UNKNOWN
    if entry.billing == "tokens":
        text = entry.text_input_usd(quoted_input_tokens(job.prompt)) + input_images_usd(entry, job)
        return text + per_image * images_returned, SOURCE_TABLE
    return per_image * images_returned, SOURCE_TABLE


def usage_cost(entry: ModelPrice, usage: Usage) -> float:
    """Exactly as billed: text in, image in and image out, each at its own rate."""
    text_in, image_in = usage.input_text_tokens, usage.input_image_tokens
    if text_in + image_in == 0 and usage.input_tokens:
        # an answer without the input breakdown: a generation's input is its text prompt
        text_in = usage.input_tokens
    return (
        text_in * entry.text_input_per_1m
        + image_in * entry.image_input_per_1m
        + usage.output_tokens * entry.image_output_per_1m
    ) / 1e6


def image_usd(
    prices: PriceTable, model: str | None, quality: str | None, size: str | None
) -> float | None:
    """USD for one image's output alone (what a cheaper quality or model changes), with ``auto``
    resolved as the quote resolves it; None when the table cannot say."""
    entry = prices.get(model)
    if entry is None:
        return prices.fallback_per_image
    q, s = assumed_quality(entry, quality), assumed_size(entry, size)
    if entry.billing == "tokens":
        tokens = entry.image_output_tokens(q, s)
        return None if tokens is None else entry.image_output_usd(tokens)
    return entry.image_price(q, s)


def assumed_quality(entry: ModelPrice, quality: str | None) -> str:
    known = entry.known_qualities()
    if quality is not None and quality in known:
        return quality
    return entry.auto_quality if entry.auto_quality in known or ANY in known else known[0]


def assumed_size(entry: ModelPrice, size: str | None) -> str:
    return size if size is not None and parse_size(size) else entry.auto_size


@dataclass(frozen=True, slots=True)
class Estimate:
    """One job's cost before it is sent (USD). ``exact`` when quality and size are known."""

    low: float
    expected: float
    high: float

    @property
    def exact(self) -> bool:
        return self.low == self.high


def estimate_job(prices: PriceTable, job: Job) -> Estimate | None:
    """Low / expected / high cost of a job, or None when its model has no price."""
    setting = _setting(prices, job)
    if setting is None:
        if prices.fallback_per_image is None:
            return None
        flat = prices.fallback_per_image * job.n
        return Estimate(flat, flat, flat)
    if setting.output_estimate is not None:  # per-image billing: the same for every such job
        return setting.output_estimate
    known, expected_out = setting.outputs, setting.expected
    if not known:
        return None
    entry = setting.entry
    # only the prompt's text (and an edit's input images) vary between the jobs of one
    # model × quality × size × n
    text_in = entry.text_input_usd(quoted_input_tokens(job.prompt))
    if job.inputs:
        text_in += input_images_usd(entry, job)
    high = text_in + setting.high
    return Estimate(
        text_in + setting.low, text_in + expected_out if expected_out is not None else high, high
    )


def worst_case_usd(prices: PriceTable, job: Job) -> float | None:
    """The most this job can cost (what the budget reserves), or None when unpriced."""
    setting = _setting(prices, job)
    if setting is None:
        return None if prices.fallback_per_image is None else prices.fallback_per_image * job.n
    if not setting.outputs:
        return None
    entry = setting.entry
    inputs = input_images_usd(entry, job, worst=True) if job.inputs else 0.0
    return _text_input_usd(entry, max_input_tokens(job.prompt)) + inputs + setting.high


def input_images_usd(entry: ModelPrice, job: Job, *, worst: bool = False) -> float:
    """An edit's input images at the model's image-input rate, from the tokens they are
    estimated at (batchgen.jobs.inputs.input_image_tokens). ``worst``: as if sent with
    ``input_fidelity: high`` and twice the estimate — what the budget reserves."""
    if not job.inputs or entry.billing != "tokens":
        return 0.0
    if not worst:
        tokens = job.input_image_tokens
    else:
        tokens = 2 * job_input_tokens(job.inputs, "high")
    return tokens * entry.image_input_per_1m / 1e6


class _Setting(NamedTuple):
    """What every job of one model × quality × size × n costs apart from its prompt (and an
    edit's input images): a job file has a handful of these, and the quote, the budget and
    each attempt's cost ask the same questions for every job. A NamedTuple, not a dataclass:
    private, and a tenth of the cost to define at start-up."""

    prices: PriceTable  # the table it was read from (a reused id() never matches)
    entry: ModelPrice
    outputs: tuple[float, ...]  # the output cost of each quality × size it may be billed as
    expected: float | None  # the output cost at the quote's assumed quality × size
    low: float  # min(outputs) (0.0 when there are none)
    high: float  # max(outputs) (0.0 when there are none)
    # one returned image at the assumed quality × size, as an attempt without usage is billed
    per_image_returned: float | None
    # a per-image model's whole estimate (no part of it depends on the prompt), else None
    output_estimate: Estimate | None


# (id(prices), model, quality, size, n) -> its _Setting
_SETTINGS: dict[tuple[Any, ...], _Setting] = {}


def _setting(prices: PriceTable, job: Job) -> _Setting | None:
    """The job's setting, computed once per table and setting; None when its model is not
    in the table."""
    key = (id(prices), job.model, job.quality, job.size, job.n)
    hit = _SETTINGS.get(key)
    if hit is not None and hit.prices is prices:
        return hit
    entry = prices.get(job.model)
    if entry is None:
        return None
    costs, expected = _costs(entry, job)
    quality, size = assumed_quality(entry, job.quality), assumed_size(entry, job.size)
    if entry.billing == "tokens":
        tokens = entry.image_output_tokens(quality, size)
        per_image = None if tokens is None else entry.image_output_usd(tokens)
    else:
        per_image = entry.image_price(quality, size)
    low, high = (min(costs), max(costs)) if costs else (0.0, 0.0)
    whole = None
    if costs and entry.billing != "tokens":
        whole = Estimate(low, expected if expected is not None else high, high)
    setting = _Setting(prices, entry, costs, expected, low, high, per_image, whole)
    return remember(_SETTINGS, key, setting)


def _costs(entry: ModelPrice, job: Job) -> tuple[tuple[float, ...], float | None]:
    """The candidates' output costs, and the output cost at the quote's assumed quality ×
    size (None when the table has no price for it): the parts of a job's cost that do not
    depend on its prompt."""
    options = (_output_only(entry, job, q, s) for q, s in _candidates(entry, job))
    costs = tuple(c for c in options if c is not None)
    quality, size = assumed_quality(entry, job.quality), _expected_size(entry, job)
    return costs, _output_only(entry, job, quality, size)


def _text_input_usd(entry: ModelPrice, tokens: int) -> float:
    return entry.text_input_usd(tokens) if entry.billing == "tokens" else 0.0


def _expected_size(entry: ModelPrice, job: Job) -> str:
    if parse_size(job.size) and _priced_size(entry, job.size):
        return str(job.size)
    return entry.auto_size


def _candidates(entry: ModelPrice, job: Job) -> list[tuple[str, str]]:
    """Every quality × size this request may be billed as."""
    known_q = entry.known_qualities()
    qualities = [job.quality] if job.quality in known_q else list(known_q)
    size = job.size
    if size is None and entry.constraints and AUTO not in entry.constraints.sizes:
        # the model has no automatic sizing: a missing size is its default, not a range
        size = entry.auto_size
    if parse_size(size) and _priced_size(entry, size):
        sizes = [str(size)]
    else:
        sizes = list(entry.known_sizes())
    return [(q, s) for q in qualities for s in sizes]


def _priced_size(entry: ModelPrice, size: str | None) -> bool:
    quality = entry.known_qualities()[0]
    if entry.billing == "tokens":
        return entry.image_output_tokens(quality, str(size)) is not None
    return entry.image_price(quality, str(size)) is not None


def _output_only(entry: ModelPrice, job: Job, quality: str, size: str) -> float | None:
    """What the images of one request cost at ``quality`` × ``size`` (the text input, which
    depends on the prompt, is added per job), or None when the table has no price for it."""
    if entry.billing == "tokens":
        tokens = entry.image_output_tokens(quality, size)
        return None if tokens is None else entry.image_output_usd(tokens) * job.n
    price = entry.image_price(quality, size)
    return None if price is None else price * job.n
