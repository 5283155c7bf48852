"""Splitting a batch file's byte stream into lines, and reading the fields of a line or a
Batch object that a provider may get wrong, without trusting their types.

**Splitting** is linear: each chunk is scanned once for newlines, and a line that spans
chunks is built up in one buffer that is handed over whole (not copied) when it ends — a
400 MB line costs its own bytes once, not three times. A line longer than the cap
(``BATCHGEN_BATCH_MAX_LINE_BYTES``, default 1 GiB: ten 4096² PNGs in base64 stay under it)
is read through without being kept and comes out as a :class:`LongLine` — its first bytes
(where the ``custom_id`` is) and its size — so collection logs an error row for that job
instead of hanging or running out of memory.

**Fields**: a status code that is not an HTTP status (``"abc"``, 10³⁰, null), a count
given as a string, ``errors`` as a list instead of ``{"data": [...]}``, a ``revised_prompt``
that is not text: each is read into the type the log expects or into None, never raised on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_LINE_ENV = "BATCHGEN_BATCH_MAX_LINE_BYTES"
DEFAULT_MAX_LINE = 1 << 30
_HEAD = 4096
# OpenAI's output lines name the job in custom_id, Gemini's responses file in key
_CUSTOM_ID = re.compile(rb'"(?:custom_id|key)"\s*:\s*"([^"\\]{1,256})"')


def max_line_bytes() -> int:
    """The longest batch output line kept, in bytes (the env variable, else 1 GiB)."""
    raw = os.environ.get(MAX_LINE_ENV, "").strip()
    try:
        value = int(raw) if raw else DEFAULT_MAX_LINE
    except ValueError:
        return DEFAULT_MAX_LINE
    return value if value > 0 else DEFAULT_MAX_LINE


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line over the cap: not kept. ``head`` is its first bytes, ``size`` its length."""

    head: bytes
    size: int
    cap: int

    @property
    def custom_id(self) -> str | None:
        found = _CUSTOM_ID.search(self.head)
        return found.group(1).decode("utf-8", "replace") if found else None


class LineSplitter:
    """Feed chunks, get complete lines (without the newline; blank lines dropped)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._pending = bytearray()
        self._skipping: tuple[bytes, int] | None = None  # (head, size so far) of a long line

    def feed(self, chunk: bytes) -> Iterator[bytearray | LongLine]:
        start = 0
        n = len(chunk)
        while start < n:
            end = chunk.find(b"\n", start)
            self._take(chunk, start, n if end < 0 else end)
            if end < 0:
                return
            line = self._finish()
            if line is not None:
                yield line
            start = end + 1

    def end(self) -> bytearray | LongLine | None:
        """The last line, when the file does not end with a newline."""
        return self._finish()

    def _take(self, chunk: bytes, start: int, end: int) -> None:
        length = end - start
        if length <= 0:
            return
        if self._skipping is not None:
            head, size = self._skipping
            self._skipping = (head, size + length)
            return
        have = len(self._pending)
        if have + length > self.cap:
            head = bytes(self._pending[:_HEAD]) + chunk[start : start + max(0, _HEAD - have)]
            self._skipping = (head, have + length)
            self._pending = bytearray()
            return
        self._pending += memoryview(chunk)[start:end]

    def _finish(self) -> bytearray | LongLine | None:
        if self._skipping is not None:
            head, size = self._skipping
            self._skipping = None
            return LongLine(head, size, self.cap)
        line, self._pending = self._pending, bytearray()
        return line if line.strip() else None


# -- fields a provider may get wrong ---------------------------------------------------------
def http_status(value: Any) -> int | None:
    """An HTTP status (100..599) or None: not a bool, a string, a float or 10**30."""
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def count(value: Any) -> int:
    """A request count: an int or a numeric string, clamped to [0, 10**9]; else 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit() or len(value) > 12:
            return 0
        value = int(value)
    if isinstance(value, int):
        return min(max(value, 0), 10**9)
    return 0


def text(value: Any, limit: int = 100_000) -> str | None:
    """A string field, or None when it is anything else (a dict, a list, a number)."""
    return value[:limit] if isinstance(value, str) else None


def batch_errors(value: Any) -> list[dict[str, Any]]:
    """A Batch object's ``errors``: ``{"data": [...]}`` per the schema, or a bare list;
    entries that are not objects are kept as their text."""
    items = value.get("data") if isinstance(value, dict) else value
    if not isinstance(items, list):
        return []
    out: list[dict[str, Any]] = []
    for item in items[:20]:
        if isinstance(item, dict):
            out.append({k: item[k] for k in ("code", "message", "param", "line") if k in item})
        else:
            out.append({"message": str(item)[:500]})
    return out
