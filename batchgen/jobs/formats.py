"""Job file readers: JSONL (with OpenAI batch lines), CSV and plain text.

Each reader turns a stream of physical lines into :class:`Record`\\s (one job as written in the
file, before defaults and ids) or :class:`Problem`\\s (what is wrong, where, and the fix). The
readers never hold more than one record, so a file of any length streams in bounded memory.
Field types and ids are checked by :mod:`batchgen.jobs.validate`, the one code path that both
validation and iteration go through.
"""

from __future__ import annotations

import csv
import difflib
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

FORMATS = ("jsonl", "csv", "text")
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "text",
}
BATCH_URL = "/v1/images/generations"
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# CSV columns the API types as integers; every other cell is passed on as a string.
_INT_COLUMNS = ("n", "output_compression", "partial_images")
_WHOLE = re.compile(r"[0-9]+(?:\.0*)?")
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


class JobFileError(Exception):
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


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return f' (found "{close[0]}": did you mean "{word}"?)' if close else ""


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
    cells = next(csv.reader([head], delimiter=_delimiter(head)), [])
    if any(cell.strip().lower() == "prompt" for cell in cells):
        return "csv"
    return None


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


def _utf16_problem(file: str, raw: bytes) -> Problem | None:
    if raw.startswith(_UTF16_BOMS):
        msg = "the file is UTF-16 text: save it as UTF-8"
        return Problem(file, 1, msg)
    return None


# ---------------------------------------------------------------------------- JSONL

_JSON_HINTS = (
    ("Expecting property name", "use double quotes around keys (JSON, not Python)"),
    ("Unterminated string", "close the string with a double quote; write a line break as \\n"),
    ("Invalid control character", "write tabs and line breaks inside strings as \\t and \\n"),
    ("Extra data", "put exactly one JSON object on each line"),
    ("Expecting ',' delimiter", 'add the missing comma, or escape a " inside a string as \\"'),
    ("Expecting ':' delimiter", 'write each field as "key": value'),
    ("Invalid \\escape", "write a backslash inside a string as \\\\"),
)


def _json_hint(text: str, error: json.JSONDecodeError) -> str:
    if text in ("{", "[") or text.endswith(("{", "[", ",")):
        return "each job must be one complete JSON object on a single line"
    if text.startswith("#"):
        return "JSONL has no comments: delete the line"
    if error.msg.startswith("Expecting value") and text[:1] not in "{[":
        return 'each line must be a JSON object like {"prompt": "..."}'
    for start, hint in _JSON_HINTS:
        if error.msg.startswith(start):
            return hint
    return "fix the JSON syntax: each line must be one complete JSON object"


def _reject_constant(name: str) -> None:
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


# Built once: json.loads with any option builds a new decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def read_jsonl(lines: Iterator[tuple[int, bytes]], file: str) -> Iterator[Item]:
    """One JSON object per line: plain jobs, or OpenAI batch lines (``custom_id`` + ``body``)."""
    for number, raw in lines:
        if number == 1 and (problem := _utf16_problem(file, raw)):
            yield problem
            return
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            yield decode_problem(file, number, raw, e)
            continue
        if not text:
            continue
        try:
            obj = _DECODER.decode(text)
        except json.JSONDecodeError as e:
            msg = f"malformed JSON at column {e.colno}: {e.msg}: {_json_hint(text, e)}"
            yield Problem(file, number, msg)
            continue
        except ValueError as e:  # NaN / Infinity
            yield Problem(file, number, f"{e}: write a number or a string instead")
            continue
        if not isinstance(obj, dict):
            hint = (
                "a JSON array is not a job file: write one object per line (JSONL)"
                if isinstance(obj, list)
                else 'write an object like {"prompt": "..."}'
            )
            yield Problem(
                file, number, f"each line must be a JSON object, got {kind_of(obj)}: {hint}"
            )
            continue
        if "custom_id" in obj and "body" in obj:
            yield _batch_record(obj, number, file)
        else:
            yield _plain_record(obj, number, file)


def _drop_nulls(obj: dict[str, Any]) -> dict[str, Any]:
    # null means "not given" (pandas and most exporters write missing values as null)
    if None not in obj.values():
        return obj
    return {k: v for k, v in obj.items() if v is not None}


def _plain_record(obj: dict[str, Any], number: int, file: str) -> Item:
    fields = _drop_nulls(obj)
    raw_id = fields.pop("id", None)
    if raw_id is None:
        return Record(number, fields)
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)  # exporters write numeric ids; "17" is the same id as 17
    if not isinstance(raw_id, str):
        msg = f'"id" must be a string, got {show(raw_id)} ({kind_of(raw_id)}): write it in quotes'
        return Problem(file, number, msg)
    return Record(number, fields, raw_id)


def _batch_record(obj: dict[str, Any], number: int, file: str) -> Item:
    custom_id, url, method, body = (obj.get(k) for k in ("custom_id", "url", "method", "body"))
    if not isinstance(custom_id, str):
        msg = (
            f'"custom_id" must be a string, got {show(custom_id)} ({kind_of(custom_id)}): '
            "write it in quotes"
        )
        return Problem(file, number, msg)
    if url != BATCH_URL:
        msg = (
            f'batch line "url" must be "{BATCH_URL}", got {show(url)}: this tool only sends '
            "image generation requests; move other requests to their own batch file"
        )
        return Problem(file, number, msg)
    if method != "POST":
        msg = f'batch line "method" must be "POST", got {show(method)}: write "method": "POST"'
        return Problem(file, number, msg)
    if not isinstance(body, dict):
        msg = (
            f'batch line "body" must be an object, got {kind_of(body)}: '
            'write "body": {"prompt": "...", ...}'
        )
        return Problem(file, number, msg)
    return Record(number, _drop_nulls(body), custom_id)


# ---------------------------------------------------------------------------- CSV


def _delimiter(header: str) -> str:
    """Comma unless the header row clearly uses ';' (European Excel) or tabs."""
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def read_csv(lines: Iterator[tuple[int, bytes]], file: str) -> Iterator[Item]:
    """CSV with a header row. Quoted cells may span lines; each record carries the line its
    row starts on. Cells are stripped; empty cells are absent."""
    bad_lines: dict[int, Problem] = {}
    first: list[tuple[int, bytes]] = []
    for number, raw in lines:
        if number == 1 and (problem := _utf16_problem(file, raw)):
            yield problem
            return
        first.append((number, raw))
        if raw.strip():
            break
    if not first or not first[-1][1].strip():
        return
    header_text = first[-1][1].decode("utf-8", "replace")

    def text_lines() -> Iterator[str]:
        for number, raw in itertools.chain(first, lines):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad_lines[number] = decode_problem(file, number, raw, e)
                yield raw.decode("utf-8", "replace")

    reader = csv.reader(text_lines(), delimiter=_delimiter(header_text), strict=True)
    columns: list[str] | None = None
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield _csv_error(file, start, reader.line_num, e)
            return
        end = reader.line_num
        spanned = [bad_lines.pop(n) for n in range(start, end + 1) if n in bad_lines]
        row_start, start = start, end + 1
        if spanned:
            yield from spanned
            if columns is None:
                return
            continue
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if columns is None:
            columns = [cell.lower() for cell in cells]
            if problem := _header_problem(columns, row_start, file):
                yield problem
                return
            continue
        yield _csv_record(columns, cells, row_start, file)


def _csv_error(file: str, start: int, end: int, error: csv.Error) -> Problem:
    text = str(error)
    if "unexpected end of data" in text or "field larger than field limit" in text:
        msg = (
            "a quoted cell starting on this row never ends: close it with a double quote, "
            'and write a quote inside a cell as ""'
        )
    elif "expected after" in text:
        msg = f'bad quoting on line {end} ({text}): write a quote inside a quoted cell as ""'
    else:
        msg = f"unreadable CSV on line {end} ({text}): check the quoting of this row"
    return Problem(file, start, msg)


def _header_problem(columns: list[str], line: int, file: str) -> Problem | None:
    if "prompt" not in columns:
        found = ", ".join(f'"{c}"' for c in columns if c) or "none"
        hint = did_you_mean("prompt", columns)
        msg = (
            f'the header row has no "prompt" column (columns: {found}){hint}: '
            'name the column holding the prompts "prompt"; the first row must be the header'
        )
        return Problem(file, line, msg)
    seen: set[str] = set()
    for column in columns:
        if column and column in seen:
            msg = f'the header names column "{column}" twice: rename or delete one of them'
            return Problem(file, line, msg)
        seen.add(column)
    return None


def _csv_record(columns: list[str], cells: list[str], line: int, file: str) -> Item:
    if len(cells) > len(columns):
        msg = (
            f"this row has {len(cells)} cells but the header has {len(columns)} columns: "
            "put cells that contain commas in double quotes"
        )
        return Problem(file, line, msg)
    fields: dict[str, Any] = {}
    for index, (column, cell) in enumerate(zip(columns, cells, strict=False), 1):
        if not cell:
            continue
        if not column:
            msg = (
                f"the cell in column {index} has no header name: name the column or empty the cell"
            )
            return Problem(file, line, msg)
        fields[column] = cell
    for column in _INT_COLUMNS:
        # pandas writes an int column holding NaN as "2.0"; anything else is left as text
        # for the field check to report
        if column in fields and _WHOLE.fullmatch(fields[column]):
            fields[column] = int(float(fields[column]))
    if "prompt" not in fields:
        return Problem(file, line, "the prompt cell is empty: write the prompt or delete the row")
    explicit_id = fields.pop("id", None)
    return Record(line, fields, explicit_id)


# ---------------------------------------------------------------------------- plain text


def read_text(lines: Iterator[tuple[int, bytes]], file: str) -> Iterator[Item]:
    """One prompt per line; blank lines and lines starting with '#' are skipped."""
    for number, raw in lines:
        if number == 1 and (problem := _utf16_problem(file, raw)):
            yield problem
            return
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            yield decode_problem(file, number, raw, e)
            continue
        if text and not text.startswith("#"):
            yield Record(number, {"prompt": text})


READERS = {"jsonl": read_jsonl, "csv": read_csv, "text": read_text}
