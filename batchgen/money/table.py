"""The price table's records and the lookups every cost computation shares.

The records are built (and validated) by :mod:`batchgen.money.load` from ``data/prices.toml``;
nothing here reads files. A size is a ``"WIDTHxHEIGHT"`` string; ``"auto"``, a missing field
or a value the model does not know all mean "not known before the answer", which the quote
turns into a low–high range and the budget into its worst case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Billing = Literal["tokens", "per_image", "chat"]
ANY = "*"
AUTO = "auto"

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(size: str | None) -> tuple[int, int] | None:
    """``"1536x1024"`` → ``(1536, 1024)``; anything else (``auto``, ``None``, junk) → None."""
    if not isinstance(size, str):
        return None
    match = _SIZE.match(size)
    return (int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True, slots=True)
class CustomSizes:
    """Any WxH within these limits (gpt-image-2)."""

    multiple: int = 16
    max_long_edge: int = 3840
    max_short_edge: int = 2160
    max_ratio: float = 3.0


@dataclass(frozen=True, slots=True)
class Constraints:
    """What a model accepts; checked before anything is sent."""

    name: str
    n_min: int = 1
    n_max: int = 10
    max_prompt_chars: int | None = None
    qualities: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    custom_sizes: CustomSizes | None = None
    rejected_params: tuple[str, ...] = ()
    auto_quality: str | None = None
    auto_size: str | None = None
    typical_latency_s: float | None = None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's billing. Token rates are USD per 1M tokens; ``per_image`` maps
    quality → size → USD (``"*"`` = any other)."""

    name: str
    billing: Billing
    source: str
    as_of: str
    text_input_per_1m: float = 0.0
    image_input_per_1m: float = 0.0
    image_output_per_1m: float = 0.0
    cached_text_input_per_1m: float | None = None
    cached_image_input_per_1m: float | None = None
    # quality -> size -> output tokens per image
    output_tokens: dict[str, dict[str, int]] = field(default_factory=dict, hash=False)
    per_image: dict[str, dict[str, float]] = field(default_factory=dict, hash=False)
    constraints: Constraints | None = None
    # the Batch API's price as a fraction of the live one (None: not offered / not known)
    batch_rate: float | None = None
    batch_source: str | None = None
    batch_as_of: str | None = None
    # chat models (judges): USD per 1M prompt / cached prompt / completion tokens
    chat_input_per_1m: float = 0.0
    chat_output_per_1m: float = 0.0
    chat_cached_input_per_1m: float | None = None

    def chat_usd(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """What one chat completion cost, from its ``usage``."""
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cached_rate = (
            self.chat_cached_input_per_1m
            if self.chat_cached_input_per_1m is not None
            else self.chat_input_per_1m
        )
        return (
            (prompt_tokens - cached) * self.chat_input_per_1m
            + cached * cached_rate
            + completion_tokens * self.chat_output_per_1m
        ) / 1e6

    @property
    def auto_quality(self) -> str:
        """The quality ``auto`` (or a missing field) is quoted as."""
        if self.constraints and self.constraints.auto_quality:
            return self.constraints.auto_quality
        table = self.output_tokens if self.billing == "tokens" else self.per_image
        if "medium" in table:
            return "medium"
        return next(iter(table), ANY)

    @property
    def auto_size(self) -> str:
        """The size ``auto`` (or a missing field) is quoted as: square, where the model has it."""
        if self.constraints and self.constraints.auto_size:
            return self.constraints.auto_size
        return "1024x1024"

    def known_qualities(self) -> tuple[str, ...]:
        table = self.output_tokens if self.billing == "tokens" else self.per_image
        return tuple(q for q in table if q != ANY) or (ANY,)

    def known_sizes(self) -> tuple[str, ...]:
        """The fixed sizes ``auto`` may pick from."""
        if self.constraints and self.constraints.sizes:
            fixed = tuple(s for s in self.constraints.sizes if parse_size(s))
            if fixed:
                return fixed
        table = self.output_tokens if self.billing == "tokens" else self.per_image
        sizes = {s for by_size in table.values() for s in by_size if parse_size(s)}
        return tuple(sorted(sizes)) or (self.auto_size,)

    def image_output_tokens(self, quality: str, size: str) -> int | None:
        """Output tokens of one image, or None when the table cannot say."""
        by_size = self.output_tokens.get(quality) or self.output_tokens.get(ANY)
        if not by_size:
            return None
        if size in by_size:
            return by_size[size]
        wh = parse_size(size)
        square = by_size.get("1024x1024")
        if wh and square:
            # the shipped counts are close to proportional to pixel area (see prices.toml)
            return round(square * wh[0] * wh[1] / (1024 * 1024))
        return by_size.get(ANY)

    def image_price(self, quality: str, size: str) -> float | None:
        """USD for one image of a per-image model, or None when the table cannot say."""
        by_size = self.per_image.get(quality) or self.per_image.get(ANY)
        if not by_size:
            return None
        return by_size.get(size, by_size.get(ANY))

    def text_input_usd(self, tokens: int) -> float:
        return tokens * self.text_input_per_1m / 1e6

    def image_output_usd(self, tokens: int) -> float:
        return tokens * self.image_output_per_1m / 1e6


@dataclass(frozen=True, slots=True)
class PriceTable:
    """All models by name, plus where the table came from.

    ``fallback_per_image`` (``--price-per-image``) prices models missing from the table.
    """

    models: dict[str, ModelPrice] = field(hash=False)
    files: tuple[str, ...] = ()
    fallback_per_image: float | None = None

    def get(self, model: str | None) -> ModelPrice | None:
        return self.models.get(model) if model else None

    def constraints_for(self, model: str | None) -> Constraints | None:
        entry = self.get(model)
        return entry.constraints if entry else None

    def is_priced(self, model: str | None) -> bool:
        """True when a cost can be given for this model (table or fallback)."""
        return self.get(model) is not None or self.fallback_per_image is not None
