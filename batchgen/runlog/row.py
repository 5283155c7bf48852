"""The attempt log's row as a type (``Row``), and the check ``RunLogWriter.append`` runs on it.

A row is a plain dict (building one is the pool's per-attempt cost, and the writer turns a
batch of them into columns in bulk), typed for readers and checkers as ``Row``, a TypedDict
whose keys and value types follow ``schema.SCHEMA`` (tests/test_row_contract.py keeps the two
in step). Every column may be left out (stored null; ``run_id``/``session`` are filled by the
writer) except ``job_id`` and ``status``, which every row has.

``check_row`` makes a value that does not fit its column an error where the row is made:
before it, the table builder stored such a value as null and logged a warning at flush time,
a second after the code that made it had moved on. A row's shape (its column names and the
type of each value) settles every type and the required columns, so the first row of each
shape is checked value by value and later ones only have their ints, lists, times and status
tested (rows of a pool share a handful of shapes); the bulk conversion in ``table.py`` stays
tolerant, as a second line for what a type test cannot see (a lone surrogate in a string).

Accepted Python types per Arrow type (None is accepted everywhere):
    string          str
    int32 / int64   int within the column's range (not bool)
    float64         float, or int within ±2**53 (exact as a float)
    bool            bool
    timestamp       epoch seconds: float (NaN is null; ±inf is refused) or int, or datetime
    list<string>    list of str
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any, TypedDict

import pyarrow as pa

from batchgen.runlog import schema

REQUIRED = ("job_id", "status")
STATUSES = frozenset({schema.STATUS_OK, schema.STATUS_ERROR, schema.STATUS_SKIPPED})


class Row(TypedDict, total=False):
    """One attempt (or skipped job) of ``log/*.parquet``; see ``schema.py`` for the columns."""

    run_id: str | None
    session: int | None
    job_id: str
    job_line: int | None
    fingerprint: str | None
    attempt: int | None
    status: str
    final: bool | None
    error_class: str | None
    http_status: int | None
    error_code: str | None
    error_message: str | None
    provider: str | None
    model: str | None
    prompt: str | None
    size: str | None
    quality: str | None
    n: int | None
    params: str | None
    queued_at: float | None
    started_at: float | None
    finished_at: float | None
    latency_s: float | None
    wait_s: float | None
    retry_after_s: float | None
    image_paths: list[str] | None
    image_count: int | None
    image_bytes: int | None
    revised_prompt: str | None
    input_tokens: int | None
    input_text_tokens: int | None
    input_image_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    cost_source: str | None
    request_id: str | None
    provider_batch_id: str | None
    endpoint: str | None
    input_hashes: list[str] | None
    vars: str | None
    reused_from: str | None


_NONE = type(None)
_EXACT_FLOAT_INT = 2**53
_INF = (math.inf, -math.inf)


class RowContract:
    """The accepted types and int ranges of one Arrow schema's columns (``check`` a row).

    ``choices``: columns whose value must be one of a set (a log row's ``status``)."""

    def __init__(
        self,
        arrow_schema: pa.Schema,
        required: tuple[str, ...] = (),
        *,
        what: str = "log row",
        defined_in: str = "batchgen/runlog/schema.py",
        choices: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.schema = arrow_schema
        self.required = required
        self.what = what  # "log row", "score row": how a message names the row
        self.defined_in = defined_in
        self.choices = dict(choices or {})
        self.accept: dict[str, frozenset[type]] = {}
        self.int_range: dict[str, tuple[int, int]] = {}
        self.timestamps: frozenset[str] = frozenset(
            f.name for f in arrow_schema if pa.types.is_timestamp(f.type)
        )
        for field in arrow_schema:
            kinds, bounds = _accepted(field.type)
            self.accept[field.name] = frozenset({_NONE, *kinds})
            if bounds is not None:
                self.int_range[field.name] = bounds
        # (column names in order, type of each value) -> what is left to test of a row of
        # that shape: the shape alone settles every column's type and the required columns,
        # so a row of a shape seen before costs a few tests of its ints, lists, times and
        # choices instead of a lookup per column (thousands of rows a second share a handful
        # of shapes)
        self._plans: dict[tuple[tuple[str, ...], tuple[type, ...]], _Plan] = {}

    def check(self, row: Mapping[str, Any]) -> None:
        """Raise TypeError (a value of the wrong type) or ValueError (an unknown or missing
        column, a value out of its column's range, a value not among its choices) naming the
        column."""
        values = tuple(row.values())
        shape = (tuple(row), tuple(map(type, values)))
        plan = self._plans.get(shape)
        if plan is None:
            self._check_all(row)
            if len(self._plans) < _MAX_PLANS:
                self._plans[shape] = self._plan(*shape)
            return
        ints, lists, times, choices = plan
        for i, lo, hi in ints:
            if not lo <= values[i] <= hi:
                self._check_all(row)  # raises, naming the column
        for i in lists:
            for item in values[i]:
                if type(item) is not str:
                    self._check_all(row)
        for i in times:
            if values[i] in _INF:
                self._check_all(row)
        for i, allowed in choices:
            if values[i] not in allowed:
                self._check_all(row)

    def _check_all(self, row: Mapping[str, Any]) -> None:
        """The check of every value on its own (a new shape, or to name what is wrong)."""
        accept = self.accept
        for name, value in row.items():
            kinds = accept.get(name)
            if kinds is None:
                raise ValueError(self._unknown(name, row))
            kind = type(value)
            if kind not in kinds:
                raise TypeError(self._wrong(name, value, row))
            if kind is int:
                lo, hi = self.int_range[name]
                if not lo <= value <= hi:
                    raise ValueError(self._wrong(name, value, row, f"outside {lo}..{hi}"))
            elif kind is list:
                for item in value:
                    if type(item) is not str:
                        raise TypeError(self._wrong(name, value, row, "items must be str"))
            elif kind is float and value in _INF and name in self.timestamps:
                raise ValueError(self._wrong(name, value, row, "not a finite time"))
        for name in self.required:
            if row.get(name) is None:
                msg = f"a {self.what} has no {name!r} (every row needs {', '.join(self.required)})"
                raise ValueError(f"{msg}: {_brief(row)}")
        for name, allowed in self.choices.items():
            value = row.get(name)
            if value is not None and value not in allowed:
                msg = (
                    f"{self.what} for job {row.get('job_id')!r}: {name} {value!r} is not one "
                    f"of {', '.join(sorted(allowed))}"
                )
                raise ValueError(msg)

    def _plan(self, names: tuple[str, ...], kinds: tuple[type, ...]) -> _Plan:
        """What a row of this (already checked) shape still needs tested, value by value."""
        ints, lists, times, choices = [], [], [], []
        for i, (name, kind) in enumerate(zip(names, kinds, strict=True)):
            if kind is int:
                ints.append((i, *self.int_range[name]))
            elif kind is list:
                lists.append(i)
            elif kind is float and name in self.timestamps:
                times.append(i)
            if name in self.choices and kind is not _NONE:
                choices.append((i, self.choices[name]))
        return tuple(ints), tuple(lists), tuple(times), tuple(choices)

    def _unknown(self, name: str, row: Mapping[str, Any]) -> str:
        return (
            f"{self.what} for job {row.get('job_id')!r}: unknown column {name!r}; add it to "
            f"the schema ({self.defined_in}, at the end) or stop sending it"
        )

    def _wrong(self, name: str, value: Any, row: Mapping[str, Any], why: str = "") -> str:
        field = self.schema.field(name)
        expected = " or ".join(k.__name__ for k in _accepted(field.type)[0])
        return (
            f"{self.what} for job {row.get('job_id')!r}: column {name!r} ({field.type}) got "
            f"{type(value).__name__} {value!r:.80}{'; ' + why if why else ''}; "
            f"expected {expected} or None"
        )


# the int columns (index, low, high), list columns, float time columns and columns with
# choices (index, the choices) of one row shape
_Plan = tuple[
    tuple[tuple[int, int, int], ...],
    tuple[int, ...],
    tuple[int, ...],
    tuple[tuple[int, frozenset[str]], ...],
]
# shapes remembered per contract; past this, rows of a new shape are checked value by value
_MAX_PLANS = 256


def _accepted(kind: pa.DataType) -> tuple[tuple[type, ...], tuple[int, int] | None]:
    """The Python types a column takes, and the range of an int in it."""
    if pa.types.is_string(kind):
        return (str,), None
    if pa.types.is_integer(kind):
        top = 2 ** (kind.bit_width - 1)
        return (int,), (-top, top - 1)
    if pa.types.is_floating(kind):
        return (float, int), (-_EXACT_FLOAT_INT, _EXACT_FLOAT_INT)
    if pa.types.is_boolean(kind):
        return (bool,), None
    if pa.types.is_timestamp(kind):
        return (float, int, dt.datetime), (-_EXACT_FLOAT_INT, _EXACT_FLOAT_INT)
    if pa.types.is_list(kind) and pa.types.is_string(kind.value_type):
        return (list,), None
    msg = f"no row contract for Arrow type {kind}"
    raise TypeError(msg)


def _brief(row: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r:.40}" for k, v in list(row.items())[:4])


LOG_ROW = RowContract(schema.SCHEMA, REQUIRED, choices={"status": STATUSES})


def check_row(row: Mapping[str, Any]) -> None:
    """Check one attempt-log row against ``schema.SCHEMA`` (see the module docstring)."""
    LOG_ROW.check(row)
