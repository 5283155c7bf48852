"""Property tests: the log's buffer-built columns equal what ``pa.array`` alone would build.

``batchgen.runlog.table`` builds most columns with ``pa.Array.from_buffers`` (hand-made
bitmaps, offsets and data) to keep pandas unimported. A wrong bit there silently corrupts the
durable log, so hypothesis generates batches column by column (the odd values included) and
every table is compared with the one the plain ``pa.array`` path builds for the same rows:
type, nulls, every value bit for bit (NaN and -0.0 too), and the problems reported. Clean
batches are also written to Parquet and read back with pyarrow, pandas and DuckDB.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import struct
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batchgen.runlog import schema, table

# batch lengths at the validity bitmap's byte edges, and a few in between
SIZES = st.sampled_from([0, 1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65])
# no example database: the shared checkout gets no .hypothesis folder
SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

I32 = (-(2**31), 2**31 - 1)
I64 = (-(2**63), 2**63 - 1)
EXACT = 2**53  # the largest int a float64 column takes exactly

# ---- values, per column type: "clean" = the exact Python type the buffer path knows ------

ODD_TEXT = ["\ud800", "a\udfffb", "\udc00\ud800"]  # lone surrogates: no UTF-8 exists
TEXT = st.one_of(
    st.sampled_from(["", "ok", "naïve café ☕", "𝔘𝔫𝔦 🦊", "\x00", "x" * 5000, "é" * 3000]),
    st.text(max_size=20),
    st.text(st.characters(min_codepoint=0x10000), max_size=5),  # astral only
)


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [lo, lo + 1, -1, 0, 1, hi - 1, hi]
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308]),
    st.floats(),
    st.sampled_from([EXACT, -EXACT, EXACT - 1, 3, 0, -7]),  # ints a float64 column takes
    st.integers(-EXACT, EXACT),
)

NUMPY = [np.int32(5), np.int64(2**40), np.float64(2.5), np.float32(1.5), np.bool_(True)]

CLEAN: dict[pa.DataType, st.SearchStrategy[Any]] = {
    pa.string(): TEXT,
    pa.int32(): _ints(*I32),
    pa.int64(): _ints(*I64),
    pa.float64(): FLOATS,
    pa.bool_(): st.booleans(),
    pa.list_(pa.string()): st.lists(st.one_of(st.none(), TEXT), max_size=4),
}

ODD: dict[pa.DataType, st.SearchStrategy[Any]] = {
    pa.string(): st.sampled_from([*ODD_TEXT, b"bytes", 5, 1.5, True, ["a"], np.str_("np")]),
    pa.int32(): st.sampled_from(
        [
            2**31,
            -(2**31) - 1,
            2**63,
            True,
            False,
            1.0,
            1.5,
            -2.0,
            math.nan,
            math.inf,
            "5",
            Decimal(3),
            *NUMPY,
        ]
    ),
    pa.int64(): st.sampled_from(
        [2**63, -(2**63) - 1, 2**64, True, 7.0, 2.5, math.nan, -math.inf, "5", *NUMPY]
    ),
    pa.float64(): st.sampled_from(
        [
            EXACT + 1,
            -EXACT - 1,
            2**63,
            2**64,
            10**400,
            True,
            False,
            Decimal("1.5"),
            "1.5",
            "nan",
            *NUMPY,
        ]
    ),
    pa.bool_(): st.sampled_from([0, 1, 1.0, "true", None, *NUMPY]),
    pa.list_(pa.string()): st.sampled_from(
        [("a", "b"), [1], [b"x"], ["ok", "\ud800"], [["nested"]], "ab", {"a": 1}, np.str_("x")]
    ),
}

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TS_CLEAN = st.one_of(
    st.sampled_from([0, 0.0, -0.0, math.nan, 2.5e-6, 0.0000005, -0.0000015, 1_764_300_000.25]),
    st.floats(-1e11, 1e11),  # years ~1200 to ~5100
    st.floats(),  # NaN (null), ±inf, beyond int64 microseconds
    st.integers(-(2**53), 2**53),
    st.sampled_from([2**63 / 1e6, -(2**63) / 1e6, 9_223_372_036_854.775, -9_223_372_036_854.775]),
)
TS_ODD = st.one_of(
    st.sampled_from(
        [
            True,
            "1.5",
            "soon",
            Decimal("2.5"),
            np.float64(3.5),
            np.int64(4),
            2**60,
            2**53 + 1,
            -(2**53) - 1,
        ]
    ),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.sampled_from([_EPOCH, dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5)))]),
)


@st.composite
def column_values(draw: st.DrawFn, kind: pa.DataType, n: int) -> list[Any]:
    """n values for one column: all None, all clean, clean but one odd value (the buffer
    path must decline that batch alone), or odd values mixed in."""
    mode = draw(st.sampled_from(["clean", "clean", "none", "one_odd", "odd"]))
    if mode == "none":
        return [None] * n
    is_ts = kind == schema.TS
    clean = TS_CLEAN if is_ts else CLEAN[kind]
    odd = TS_ODD if is_ts else ODD[kind]
    nulls = draw(st.sampled_from([0.0, 0.3, 0.9]))
    pick = st.one_of(clean, odd) if mode == "odd" else clean
    # where the nulls fall: one seed a column, not a hypothesis draw a cell (two draws a cell
    # made data generation ~90 % of this file's time; the values are still drawn one by one)
    where = random.Random(draw(st.integers(0, 2**32 - 1)))
    values = [None if where.random() < nulls else draw(pick) for _ in range(n)]
    if mode == "one_odd" and n:
        values[draw(st.integers(0, n - 1))] = draw(odd)
    return values


@st.composite
def batches(draw: st.DrawFn, clean_only: bool = False) -> list[dict[str, Any]]:
    n = draw(SIZES)
    columns = {}
    for field in schema.SCHEMA:
        if clean_only:
            strategy = TS_ROUND_TRIP if field.type == schema.TS else CLEAN_ROUND_TRIP[field.type]
            columns[field.name] = draw(
                st.lists(st.one_of(st.none(), strategy), min_size=n, max_size=n)
            )
        else:
            columns[field.name] = draw(column_values(field.type, n))
    # a key left out reads as null (run_id / session as the writer's defaults)
    left_out = draw(st.sets(st.sampled_from(schema.COLUMNS), max_size=6))
    rows = [
        {k: v[i] for k, v in columns.items() if k not in left_out or draw(st.booleans())}
        for i in range(n)
    ]
    if not clean_only and rows and draw(st.booleans()):
        rows[draw(st.integers(0, n - 1))]["not_a_column"] = 1
    return rows


# ---- comparing arrays exactly -------------------------------------------------------------


def _exact(value: Any) -> Any:
    """A key equal only for identical values: NaN equals NaN, -0.0 differs from 0.0."""
    if isinstance(value, float):
        return ("nan",) if math.isnan(value) else struct.pack("<d", value)
    if isinstance(value, list):
        return [_exact(v) for v in value]
    return value


def _readable(column: pa.Array) -> list[Any]:
    # timestamps as their int64 microseconds: far years have no datetime
    if pa.types.is_timestamp(column.type):
        return column.view(pa.int64()).to_pylist()
    return [_exact(v) for v in column.to_pylist()]


def assert_same_table(built: pa.Table, expected: pa.Table) -> None:
    assert built.schema == expected.schema == schema.SCHEMA
    assert built.num_rows == expected.num_rows
    for name in schema.COLUMNS:
        got, want = built[name].combine_chunks(), expected[name].combine_chunks()
        assert got.type == want.type, name
        assert got.null_count == want.null_count, name
        assert _readable(got) == _readable(want), name


def _via_pa_array(rows: list[dict[str, Any]]) -> tuple[pa.Table, list[str]]:
    """rows_to_table with the buffer paths switched off: the reference."""
    with (
        mock.patch.object(table, "_from_buffers", return_value=None),
        mock.patch.object(table, "_timestamps_from_buffers", return_value=None),
    ):
        return table.rows_to_table(rows, run_id="run-1", session=3)


def _check(rows: list[dict[str, Any]]) -> pa.Table:
    built, problems = table.rows_to_table(rows, run_id="run-1", session=3)
    built.validate(full=True)
    expected, expected_problems = _via_pa_array(rows)
    expected.validate(full=True)
    assert_same_table(built, expected)
    assert problems == expected_problems
    return built


# ---- the properties (one column first: a failure there shrinks in seconds) ----------------


def _column_check(kind: pa.DataType) -> Callable[[list[Any]], None]:
    def check(values: list[Any]) -> None:
        built = table._from_buffers(values, kind)
        if built is None:  # the buffer path declined: pa.array decides, nothing to compare
            return
        built.validate(full=True)
        want = pa.array(values, kind)
        assert built.type == want.type
        assert built.null_count == want.null_count
        assert _readable(built) == _readable(want)

    return check


@SETTINGS
@given(st.data())
def test_each_column_kind_from_buffers_equals_pa_array(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(list(CLEAN)))
    n = data.draw(SIZES)
    _column_check(kind)(data.draw(column_values(kind, n)))


@SETTINGS
@given(st.lists(st.one_of(st.none(), TS_CLEAN), max_size=70))
def test_timestamps_from_buffers_equal_the_compute_path(values: list[Any]) -> None:
    built = table._timestamps_from_buffers(values)
    problems: list[str] = []
    with mock.patch.object(table, "_timestamps_from_buffers", return_value=None):
        want = table._timestamps(values, "queued_at", problems)
    want.validate(full=True)
    if built is None:  # declined (inf, or beyond int64 microseconds): the slow path nulls it
        assert problems
        return
    built.validate(full=True)
    assert problems == []
    assert built.type == want.type == schema.TS
    assert built.null_count == want.null_count
    assert _readable(built) == _readable(want)


@SETTINGS
@given(
    st.lists(st.one_of(st.none(), TEXT), max_size=70),
    st.lists(st.one_of(st.none(), st.integers(*I64)), max_size=70),
)
def test_the_index_helpers_equal_pa_array(texts: list[str | None], ints: list[int | None]) -> None:
    # jobindex.py calls these with has_none=False on lists with no None
    for has_none, s, i in ((True, texts, ints), (False, [t or "" for t in texts], [0] * len(ints))):
        built = table.strings_from_buffers(s, has_none)
        built.validate(full=True)
        assert built.equals(pa.array(s, pa.string()))
        got = table.ints_from_buffers(i, 64, has_none)
        got.validate(full=True)
        assert got.equals(pa.array(i, pa.int64()))


@SETTINGS
@given(batches())
@example([{"queued_at": math.inf}])  # a crash before the fix (see the commit)
@example([{"started_at": 1e300, "finished_at": -9_300_000_000_000.0}])
@example([{"finished_at": 2**63 / 1e6, "queued_at": 1.5}, {"finished_at": None}])
def test_rows_to_table_equals_the_pa_array_path(rows: list[dict[str, Any]]) -> None:
    _check(rows)


# ---- Parquet round trip: pyarrow, pandas and DuckDB read back the rows --------------------

CLEAN_ROUND_TRIP = dict(CLEAN)
CLEAN_ROUND_TRIP[pa.float64()] = st.floats()  # ints come back as floats: compared apart
# years 1843-2191: every reader turns them into its own datetime type
TS_ROUND_TRIP = st.one_of(
    st.just(math.nan), st.floats(-4e9, 7e9), st.integers(-(4 * 10**9), 7 * 10**9)
)


def _expected_cell(value: Any, kind: pa.DataType) -> Any:
    if value is None or (kind == schema.TS and math.isnan(value)):
        return None
    if kind == schema.TS:
        return round(value * 1_000_000.0)
    return _exact(value)


def _expected_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    defaults = {"run_id": "run-1", "session": 3}
    return {
        f.name: [_expected_cell(r.get(f.name, defaults.get(f.name)), f.type) for r in rows]
        for f in schema.SCHEMA
    }


def _micros(value: Any) -> int:
    return (value - _EPOCH) // dt.timedelta(microseconds=1)


def _pandas_columns(path: Path) -> dict[str, list[Any]]:
    # the Arrow-backed dtypes keep NaN apart from null and int64 exact
    frame = pd.read_parquet(path, dtype_backend="pyarrow")
    out = {}
    for f in schema.SCHEMA:
        cells = [None if v is pd.NA else v for v in frame[f.name].tolist()]
        if f.type == schema.TS:
            cells = [None if v is None else _micros(v.to_pydatetime()) for v in cells]
        out[f.name] = [_exact(v) for v in cells]
    return out


def _duckdb_columns(path: Path) -> dict[str, list[Any]]:
    picks = [f"epoch_us({f.name})" if f.type == schema.TS else f.name for f in schema.SCHEMA]
    with duckdb.connect() as con:
        got = con.execute(f"SELECT {', '.join(picks)} FROM read_parquet(?)", [str(path)])
        rows = got.fetchall()
    return {f.name: [_exact(r[i]) for r in rows] for i, f in enumerate(schema.SCHEMA)}


@settings(SETTINGS, max_examples=25)
@given(batches(clean_only=True))
def test_a_parquet_file_reads_back_the_rows_everywhere(rows: list[dict[str, Any]]) -> None:
    built = _check(rows)
    expected = _expected_columns(rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "part-1-0.parquet"
        pq.write_table(built, path)
        back = pq.read_table(path)
        back.validate(full=True)
        assert_same_table(back, built)
        assert {f.name: _readable(back[f.name].combine_chunks()) for f in schema.SCHEMA} == (
            expected
        )
        assert _pandas_columns(path) == expected
        assert _duckdb_columns(path) == expected
