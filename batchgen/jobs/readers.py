"""Job file readers: JSONL (with OpenAI batch lines), CSV and plain text.

Each reader turns a stream of physical lines into :class:`Record`\\s or :class:`Problem`\\s.
The readers never hold more than one record, so a file of any length streams in bounded memory.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

from batchgen.jobs.formats import (
    Item,
    Problem,
    Record,
    csv_delimiter,
    decode_problem,
    did_you_mean,
    kind_of,
    show,
    utf16_problem,
)

BATCH_URL = "/v1/images/generations"
# CSV columns the API types as integers; every other cell is passed on as a string.
_INT_COLUMNS = ("n", "output_compression", "partial_images")
_WHOLE = re.compile(r"[0-9]+(?:\.0*)?")


def _stripped_lines(
    lines: Iterator[tuple[int, bytes]], file: str
) -> Iterator[tuple[int, str] | Problem]:
    """(line number, stripped text) per line of a line-per-record format; a line that is not
    UTF-8 is a Problem, and a UTF-16 file is one Problem and nothing else."""
    for number, raw in lines:
        if number == 1 and (problem := utf16_problem(file, raw)):
            yield problem
            return
        try:
            yield number, raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            yield decode_problem(file, number, raw, e)


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


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        # the request encoder would send it as null: refuse it here, with its line
        msg = f"the number {text[:40]} is too large for a JSON number (it reads as infinity)"
        raise ValueError(msg)
    return value


_INF = float("inf")
# Built once: json.loads with any option builds a new decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def read_jsonl(lines: Iterator[tuple[int, bytes]], file: str) -> Iterator[Item]:
    """One JSON object per line: plain jobs, or OpenAI batch lines (``custom_id`` + ``body``)."""
    for item in _stripped_lines(lines, file):
        if isinstance(item, Problem):
            yield item
            continue
        number, text = item
        if not text:
            continue
        try:
            obj = _DECODER.decode(text)
        except json.JSONDecodeError as e:
            msg = f"malformed JSON at column {e.colno}: {e.msg}: {_json_hint(text, e)}"
            yield Problem(file, number, msg)
            continue
        except ValueError as e:  # NaN / Infinity / 1e400
            yield Problem(file, number, f"{e}: write a number or a string instead")
            continue
        except RecursionError:
            msg = "the JSON is nested too deeply to read: flatten the object"
            yield Problem(file, number, msg)
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
    fields = _drop_nulls(obj) if None in obj.values() else obj
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


def read_csv(lines: Iterator[tuple[int, bytes]], file: str) -> Iterator[Item]:
    """CSV with a header row. Quoted cells may span lines; each record carries the line its
    row starts on. Cells are stripped; empty cells are absent."""
    bad_lines: dict[int, Problem] = {}
    first: list[tuple[int, bytes]] = []
    for number, raw in lines:
        if number == 1 and (problem := utf16_problem(file, raw)):
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

    reader = csv.reader(text_lines(), delimiter=csv_delimiter(header_text), strict=True)
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
    for item in _stripped_lines(lines, file):
        if isinstance(item, Problem):
            yield item
            continue
        number, text = item
        if text and not text.startswith("#"):
            yield Record(number, {"prompt": text})


READERS = {"jsonl": read_jsonl, "csv": read_csv, "text": read_text}
