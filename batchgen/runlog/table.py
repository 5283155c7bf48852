"""Rows (dicts) → a pyarrow Table with schema.SCHEMA, column by column.

The pool's rows are plain dicts built on the event loop; converting them here, in bulk on the
writer's thread, keeps the per-row cost on the loop at one list append. A value that does not
fit its column becomes null and is reported, so one bad row cannot stop the log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from batchgen.runlog import schema

_CONVERT_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)
_KNOWN = frozenset(schema.COLUMNS)


def _epoch_seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value)


def _timestamps(values: list[Any], name: str, problems: list[str]) -> pa.Array:
    try:
        seconds = pa.array(values, pa.float64(), from_pandas=True)
    except _CONVERT_ERRORS:
        converted = []
        for v in values:
            try:
                converted.append(_epoch_seconds(v))
            except _CONVERT_ERRORS:
                problems.append(f"column {name}: {v!r} is not epoch seconds; stored null")
                converted.append(None)
        seconds = pa.array(converted, pa.float64(), from_pandas=True)
    micros = pc.round(pc.multiply(seconds, 1_000_000.0)).cast(pa.int64())
    return micros.cast(schema.TS)


def _column(values: list[Any], field: pa.Field, problems: list[str]) -> pa.Array:
    try:
        return pa.array(values, field.type)
    except _CONVERT_ERRORS:
        pass
    # slow path, only for a batch holding a bad value: find it, null it, say so
    fixed = []
    for v in values:
        try:
            pa.array([v], field.type)
            fixed.append(v)
        except _CONVERT_ERRORS:
            problems.append(f"column {field.name}: {v!r} does not fit {field.type}; stored null")
            fixed.append(None)
    return pa.array(fixed, field.type)


def rows_to_table(
    rows: Sequence[dict[str, Any]], *, run_id: str, session: int
) -> tuple[pa.Table, list[str]]:
    """Build the table; return it with a list of problems (bad values, unknown keys).

    ``run_id`` and ``session`` fill rows that leave those columns out.
    """
    problems: list[str] = []
    unknown = set().union(*rows) - _KNOWN
    if unknown:
        problems.append(
            f"unknown row keys {sorted(unknown)} were dropped: add them to "
            "batchgen/runlog/schema.py or stop sending them"
        )
    arrays = []
    for field in schema.SCHEMA:
        name = field.name
        if name == "run_id":
            values = [r.get(name, run_id) for r in rows]
        elif name == "session":
            values = [r.get(name, session) for r in rows]
        else:
            values = [r.get(name) for r in rows]
        if field.type == schema.TS:
            arrays.append(_timestamps(values, name, problems))
        else:
            arrays.append(_column(values, field, problems))
    return pa.Table.from_arrays(arrays, schema=schema.SCHEMA), problems
