"""Rows (dicts) → a pyarrow Table with schema.SCHEMA, column by column.

The pool's rows are plain dicts built on the event loop; converting them here, in bulk on the
writer's thread, keeps the per-row cost on the loop at one list append. A value that does not
fit its column becomes null and is reported, so one bad row cannot stop the log.

Columns are built from their buffers (``pa.Array.from_buffers``) when every value has the
column's exact Python type (or is None), which is every column of every row the pool makes.
``pa.array`` on a Python list first asks pyarrow's pandas shim whether the list is a pandas
object, and that imports pandas (~0.15 s of CPU, apache/arrow#34994) in any environment that
has it, though the log never holds a pandas object. Anything else (a numpy scalar, a bool in
an int column, an int too big for its column) goes through ``pa.array`` as before, so what is
stored, and what pyarrow, pandas and DuckDB read back, does not change (tests compare both
paths value for value).
"""

from __future__ import annotations

import datetime as dt
from array import array
from collections.abc import Mapping, Sequence
from itertools import accumulate, chain, repeat
from operator import is_not
from typing import Any, cast

import pyarrow as pa

from batchgen.runlog import schema

_CONVERT_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)
_KNOWN = frozenset(schema.COLUMNS)
_NONE = type(None)
# array typecodes by width: "i" and "q" are 4 and 8 bytes on every platform CPython runs on
_INT_CODE = {32: "i", 64: "q"}
_EXACT_INT = 2**53  # pyarrow refuses ints beyond this in a float64 column (not exact)


# ---- columns from buffers (no pandas) -----------------------------------------------------
# Kept to C-level loops (map, array, bytes.join) where they can be: the writer thread holds
# the GIL while it converts, and the event loop waits for it.

_ASCII_01 = bytes.maketrans(b"\x00\x01", b"01")


def _bits(flags: list[bool]) -> pa.Buffer:
    """Arrow's LSB-first bitmap of ``flags``: the binary digits of one int, little-endian."""
    digits = bytes(flags[::-1]).translate(_ASCII_01) or b"0"
    return pa.py_buffer(int(digits, 2).to_bytes((len(flags) + 7) // 8 or 1, "little"))


def _validity(values: Sequence[Any], has_none: bool) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap (bit i set = value i present) and the null count."""
    if not has_none:
        return None, 0
    flags = list(map(is_not, values, repeat(None)))
    return _bits(flags), len(flags) - sum(flags)


def strings_from_buffers(values: Sequence[str | None], has_none: bool = True) -> pa.Array:
    """A ``pa.string()`` array of Python str (or None), without pa.array's pandas check.
    Raises UnicodeEncodeError (a lone surrogate) or OverflowError (≥ 2 GiB of text)."""
    # has_none False: the caller saw no None in values
    present = [("" if v is None else v) for v in values] if has_none else cast(list[str], values)
    text = "".join(present)
    if text.isascii():  # one byte per character: the offsets follow the str lengths
        data = text.encode("ascii")
        lengths = map(len, present)
    else:
        encoded = list(map(str.encode, present))
        data = b"".join(encoded)
        lengths = map(len, encoded)
    offsets = array(_INT_CODE[32], [0, *accumulate(lengths)])
    validity, nulls = _validity(values, has_none)
    buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.string(), len(values), buffers, null_count=nulls)


def ints_from_buffers(
    values: Sequence[int | None], bits: int = 64, has_none: bool = True
) -> pa.Array:
    """An int32/int64 array of Python int (or None); OverflowError when one does not fit."""
    data = array(
        _INT_CODE[bits],
        [0 if v is None else v for v in values] if has_none else cast(list[int], values),
    )
    validity, nulls = _validity(values, has_none)
    kind = pa.int32() if bits == 32 else pa.int64()
    buffers = [validity, pa.py_buffer(data)]
    return pa.Array.from_buffers(kind, len(values), buffers, null_count=nulls)


def _floats(values: Sequence[float | int | None], has_none: bool) -> pa.Array:
    data = array(
        "d", [0.0 if v is None else v for v in values] if has_none else cast(list[float], values)
    )
    validity, nulls = _validity(values, has_none)
    return pa.Array.from_buffers(
        pa.float64(), len(values), [validity, pa.py_buffer(data)], null_count=nulls
    )


def _timestamps_from_buffers(values: list[Any]) -> pa.Array | None:
    """Epoch seconds (float or int; None and NaN are null) → timestamp[us, UTC], rounded half
    to even as pc.round does; None when a value is anything else (or infinite)."""
    types = set(map(type, values))
    types.discard(_NONE)
    if not types:
        return pa.nulls(len(values), schema.TS)
    if not types <= {float, int} or not _exact_as_float(values, types):
        return None
    try:
        micros = [None if v is None or v != v else round(v * 1_000_000.0) for v in values]
        data = array(_INT_CODE[64], [0 if m is None else m for m in micros])
    except OverflowError:  # inf, or beyond year 294,247
        return None
    validity, nulls = _validity(micros, None in micros)
    return pa.Array.from_buffers(
        schema.TS, len(values), [validity, pa.py_buffer(data)], null_count=nulls
    )


def _exact_as_float(values: list[Any], types: set[type]) -> bool:
    return int not in types or all(-_EXACT_INT <= v <= _EXACT_INT for v in values if type(v) is int)


def _bools(values: Sequence[bool | None], has_none: bool) -> pa.Array:
    validity, nulls = _validity(values, has_none)
    data = _bits([v is True for v in values] if has_none else cast(list[bool], values))
    return pa.Array.from_buffers(pa.bool_(), len(values), [validity, data], null_count=nulls)


def _string_lists(values: Sequence[list[str] | None], has_none: bool) -> pa.Array | None:
    items = list(chain.from_iterable(v for v in values if v is not None))
    types = set(map(type, items))
    if not types <= {str, _NONE}:
        return None
    lengths = (0 if v is None else len(v) for v in values) if has_none else map(len, values)  # type: ignore[arg-type]
    offsets = array(_INT_CODE[32], [0, *accumulate(lengths)])
    validity, nulls = _validity(values, has_none)
    return pa.Array.from_buffers(
        pa.list_(pa.string()),
        len(values),
        [validity, pa.py_buffer(offsets)],
        null_count=nulls,
        children=[strings_from_buffers(items, _NONE in types)],
    )


def _from_buffers(values: list[Any], kind: pa.DataType) -> pa.Array | None:
    """The column built from its buffers, or None when a value is not of the exact type that
    path knows (then pa.array decides, as it always did)."""
    types = set(map(type, values))
    has_none = _NONE in types
    types.discard(_NONE)
    if not types:
        return pa.nulls(len(values), kind)
    try:
        if kind == pa.string() and types == {str}:
            return strings_from_buffers(values, has_none)
        if kind in (pa.int32(), pa.int64()) and types == {int}:
            return ints_from_buffers(values, kind.bit_width, has_none)
        if kind == pa.float64() and types <= {float, int}:
            return _floats(values, has_none) if _exact_as_float(values, types) else None
        if kind == pa.bool_() and types == {bool}:
            return _bools(values, has_none)
        if kind == pa.list_(pa.string()) and types == {list}:
            return _string_lists(values, has_none)
    except (OverflowError, UnicodeEncodeError):
        return None
    return None


def _epoch_seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value)


def _timestamps(values: list[Any], name: str, problems: list[str]) -> pa.Array:
    fast = _timestamps_from_buffers(values)
    if fast is not None:
        return fast
    try:
        return _to_timestamp(pa.array(values, pa.float64(), from_pandas=True))
    except _CONVERT_ERRORS:
        pass
    # slow path: ±inf or beyond int64 microseconds fail the cast, so check each value whole
    converted = []
    for v in values:
        try:
            seconds = _epoch_seconds(v)
            _to_timestamp(pa.array([seconds], pa.float64(), from_pandas=True))
            converted.append(seconds)
        except _CONVERT_ERRORS:
            problems.append(f"column {name}: {v!r} is not epoch seconds; stored null")
            converted.append(None)
    return _to_timestamp(pa.array(converted, pa.float64(), from_pandas=True))


def _to_timestamp(seconds: pa.Array) -> pa.Array:
    # lazy: pyarrow.compute (~30 ms, and pandas's shim) only for a batch with an odd
    # timestamp; the log's writer imports this module and a run never imports
    # pyarrow.compute (tests/test_startup.py)
    import pyarrow.compute as pc

    micros = pc.round(pc.multiply(seconds, 1_000_000.0)).cast(pa.int64())
    return micros.cast(schema.TS)


def _column(values: list[Any], field: pa.Field, problems: list[str]) -> pa.Array:
    fast = _from_buffers(values, field.type)
    if fast is not None:
        return fast
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
    rows: Sequence[Mapping[str, Any]], *, run_id: str, session: int
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
