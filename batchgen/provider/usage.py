"""The ``usage`` object of an images answer, checked: a provider (or a gateway in front of
it) may send negative, fractional, non-numeric, infinite or absurd token counts. A count that
is not a plausible whole number is not used; the Usage is then marked ``suspect`` and the
attempt is priced from the table (batchgen.money.cost_of_attempt), so a lying answer can never
lower the spend below the table price, nor put a number in the log that its int64 columns
cannot hold."""

from __future__ import annotations

import math
from typing import Any

from batchgen.provider.base import Usage

# far above any real answer (gpt-image-1: ~6,240 output tokens per image, n ≤ 10; a 32,000
# character prompt), far below what overflows a float's exact integers or an int64 column
MAX_TOKENS = 10**8


def _count(value: Any, name: str, bad: list[str]) -> int:
    """A token count, or 0 (and a note in ``bad``) when ``value`` is not a plausible one."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        number: float = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = value
    else:
        bad.append(f"{name}={_show(value)}")
        return 0
    if not 0 <= number <= MAX_TOKENS:
        bad.append(f"{name}={_show(value)}")
        return 0
    return int(number)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_usage(raw: Any) -> tuple[Usage | None, str | None]:
    """(Usage, a note on what was wrong with it, or None). A missing or null ``usage`` is
    (None, None): the answer simply did not say."""
    if raw is None:
        return None, None
    if type(raw) is dict:
        # the answer of every well-behaved provider: each count a plain int in range, or
        # absent; the same Usage as _checked makes, without a call per count
        details = raw.get("input_tokens_details")
        if details is None or type(details) is dict:
            inner = details or {}
            text, image = inner.get("text_tokens"), inner.get("image_tokens")
            total_in, output = raw.get("input_tokens"), raw.get("output_tokens")
            for value in (text, image, total_in, output):
                if value is not None and (type(value) is not int or not 0 <= value <= MAX_TOKENS):
                    return _checked(raw)
            return _usage(details, text or 0, image or 0, total_in or 0, output or 0), None
    return _checked(raw)


def _usage(
    details: Any, text: int, image: int, total_in: int, output: int, suspect: bool = False
) -> Usage:
    """The Usage of counts already checked (0 where absent). No breakdown of the input (no
    ``input_tokens_details``, or an empty one): the prompt was text only, as for generations."""
    if not details and total_in:
        text = total_in
    return Usage(total_in or text + image, text, image, output, suspect)


def _checked(raw: Any) -> tuple[Usage | None, str | None]:
    """parse_usage, count by count, naming what is not a plausible count."""
    if not isinstance(raw, dict):
        note = f"usage ignored: it is {_show(raw)}, not an object; priced from the table"
        return Usage(suspect=True), note
    bad: list[str] = []
    details = raw.get("input_tokens_details")
    if details is not None and not isinstance(details, dict):
        bad.append(f"input_tokens_details={_show(details)}")
    details = details if isinstance(details, dict) else {}
    text = _count(details.get("text_tokens"), "input_tokens_details.text_tokens", bad)
    image = _count(details.get("image_tokens"), "input_tokens_details.image_tokens", bad)
    total_in = _count(raw.get("input_tokens"), "input_tokens", bad)
    output = _count(raw.get("output_tokens"), "output_tokens", bad)
    usage = _usage(details, text, image, total_in, output, bool(bad))
    if bad:
        return usage, f"usage ignored ({', '.join(bad)}: not token counts); priced from the table"
    return usage, None
