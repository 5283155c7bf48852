"""What a job file is: its format, its physical lines, and what reading it yields.

:class:`Record` (one job as written in the file, before defaults and ids) and :class:`Problem`
(what is wrong, where, and the fix) are what the per-format readers in
:mod:`batchgen.jobs.readers` yield. Field types and ids are checked by
:mod:`batchgen.jobs.validate`, the one code path that both validation and iteration go through.
"""

from __future__ import annotations

import csv
import difflib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from batchgen.errors import UsageError

FORMATS = ("jsonl", "csv", "text", "spec")
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "text",
    ".yaml": "spec",
    ".yml": "spec",
}
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# How many lines the format sniffer reads at most looking for the first non-blank one.
_SNIFF_LINES = 1000


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a job file. ``line`` is 1-based; 0 means the file as a whole."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"


class JobFileError(UsageError):
    """A job file cannot be used as it is (raised by ``iter_jobs``; ``validate_file`` lists
    problems instead of raising)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Record:
    """One job as the file writes it: request fields without the id, no defaults applied."""

    line: int
    fields: dict[str, Any]
    explicit_id: str | None = None
    vars: dict[str, str] | None = None  # a spec cell's variables (batchgen.jobs.spec)


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


Item = Record | Problem


def kind_of(value: object) -> str:
    """How JSON would call this value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def show(value: object, limit: int = 40) -> str:
    """A short JSON rendering of a value, for messages."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def nearest(word: str, candidates: Iterable[str], cutoff: float = 0.75) -> str | None:
    """The candidate ``word`` is most likely a typo of (difflib's ratio at least ``cutoff``),
    or None."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = nearest(word, candidates)
    return f' (found "{close}": did you mean "{word}"?)' if close else ""


# ---------------------------------------------------------------------------- format detection


def detect_format(path: Path, first_line: str | None) -> str | None:
    """The format of a job file: the extension decides, the first non-blank line settles
    ambiguous cases (a .txt of JSON objects is JSONL). None when it cannot be told."""
    fmt = _EXTENSIONS.get(path.suffix.lower())
    head = (first_line or "").strip()
    if fmt == "text" and head.startswith("{"):
        try:
            looks_json = isinstance(json.loads(head), dict)
        except ValueError:
            looks_json = False
        return "jsonl" if looks_json else "text"
    if fmt is not None or not head:
        return fmt
    if head.startswith(("{", "[")):
        return "jsonl"
    cells = next(csv.reader([head], delimiter=csv_delimiter(head)), [])
    if any(cell.strip().lower() == "prompt" for cell in cells):
        return "csv"
    return None


def csv_delimiter(header: str) -> str:
    """Comma unless the header row clearly uses ';' (European Excel) or tabs."""
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def first_content_line(path: Path) -> str | None:
    """The first non-blank line (decoded leniently; the reader reports bad bytes exactly)."""
    with path.open("rb") as f:
        for i, raw in enumerate(f):
            if i >= _SNIFF_LINES:
                break
            text = raw.removeprefix(_BOM).decode("utf-8", "replace").strip()
            if text:
                return text
    return None


# ---------------------------------------------------------------------------- physical lines


def physical_lines(f: BinaryIO, hasher: Hasher | None = None) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw bytes) for each line; feeds every byte to ``hasher`` so the
    checksum describes exactly the bytes that were read."""
    first = f.readline()
    if not first:
        return
    if hasher is not None:
        hasher.update(first)
    yield 1, first.removeprefix(_BOM)
    if hasher is None:
        yield from enumerate(f, 2)
        return
    for number, raw in enumerate(f, 2):
        hasher.update(raw)
        yield number, raw


def decode_problem(file: str, line: int, raw: bytes, error: UnicodeDecodeError) -> Problem:
    column = len(raw[: error.start].decode("utf-8", "replace")) + 1
    msg = (
        f"not UTF-8 text: byte 0x{raw[error.start]:02x} at column {column}: "
        "save the file as UTF-8 (in Excel: CSV UTF-8; in editors: encoding UTF-8)"
    )
    return Problem(file, line, msg)


def utf16_problem(file: str, raw: bytes) -> Problem | None:
    if raw.startswith(_UTF16_BOMS):
        msg = "the file is UTF-16 text: save it as UTF-8"
        return Problem(file, 1, msg)
    return None
