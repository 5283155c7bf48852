"""What comes back from a provider, read safely: Retry-After and ``x-ratelimit-reset-*``
values as seconds, fields of an error body as short redacted text, and any text made safe for
a terminal. The classes these feed are in ``batchgen.errors.taxonomy``."""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from batchgen.redaction import redact


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``retry-after`` (seconds or an HTTP date).

    ``headers`` is any case-insensitive mapping (aiohttp's CIMultiDict) or a plain dict.
    A value that is not a number of seconds ≥ 0 (``nan``, ``-5``, ``soon``) says nothing: None.
    Huge values are returned as they are; the limiter caps every pause it holds."""
    get = headers.get
    ms = _seconds(get("retry-after-ms") or get("Retry-After-Ms"))
    if ms is not None:
        return ms / 1000.0
    value = get("retry-after") or get("Retry-After")
    if not value:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _seconds(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None  # nan and negatives fail the comparison


# OpenAI's reset format: one or more NUMBER UNIT pairs, nothing else (`6m0s`, `20ms`, `1.5s`)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_WHOLE_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_reset_duration(value: str | None) -> float | None:
    """Parse ``x-ratelimit-reset-*`` values like ``1s``, ``6m0s``, ``20ms`` into seconds.

    Exactly: ``1e9s`` is a billion seconds (not 9), a bare number is seconds, and anything
    else (``-3s``, ``nan``, ``soon``) says nothing (None)."""
    if not value:
        return None
    text = value.strip()
    if _WHOLE_DURATION.fullmatch(text):
        return sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(text))
    number = _seconds(text.removesuffix("s")) if text.endswith("s") and "ms" not in text else None
    return number if number is not None else _seconds(text)


# a field of a provider's answer is cut to this many characters before it is stored
MAX_FIELD_CHARS = 2000


def provider_text(
    value: Any, secrets: Sequence[str] = (), limit: int = MAX_FIELD_CHARS
) -> str | None:
    """A value from a provider's answer made safe to store and print: None stays None,
    anything else (a number, an object, a list) becomes its text, redacted, cut to ``limit``.
    Terminal control sequences are kept here (the log is data); :func:`printable` removes
    them before anything reaches a terminal or a text report."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)
        except (TypeError, ValueError):
            text = repr(value)
    # redact before cutting, so a secret is never cut into a part the patterns miss
    longest = 0
    for secret in secrets:
        longest = max(longest, len(secret))
    text = redact(text[: limit + longest + 64], secrets)
    return text[:limit]


def error_code(value: Any, secrets: Sequence[str] = ()) -> str | None:
    """``error.code`` / ``error.type`` as providers send it: a string (OpenAI), a number
    (OpenRouter), or something else entirely. A string or a number becomes a short string;
    an object, a list, a boolean or null is no code at all."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return provider_text(value, secrets, limit=200) or None


# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC strings, other ESC pairs,
# then any C0/C1 control but tab and newline, and the bidi overrides that reorder a line
_TERMINAL_UNSAFE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[@-Z\\-_ -/]?[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)


def printable(text: str, *, one_line: bool = False) -> str:
    """``text`` without terminal control sequences (colours, cursor moves, OSC titles and
    hyperlinks, bells): what a provider wrote is shown as data, never executed by the
    terminal. ``one_line`` also turns line breaks and tabs into spaces."""
    if text.isprintable() and not one_line:
        return text
    text = _TERMINAL_UNSAFE.sub("", text)
    if one_line:
        text = text.replace("\n", " ").replace("\t", " ")
    return text


def printable_all(value: Any) -> Any:
    """Every string inside ``value`` (dicts, lists, tuples) passed through :func:`printable`."""
    if isinstance(value, str):
        return printable(value) if not value.isprintable() else value
    if isinstance(value, dict):
        return {k: printable_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(printable_all(v) for v in value)
    return value
