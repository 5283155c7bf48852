"""The log row's contract: ``Row`` follows the Parquet schema, and a row that does not fit it
is refused where it is made (``RunLogWriter.append``), naming the column."""

from __future__ import annotations

import datetime as dt
import typing
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from batchgen.runlog import schema
from batchgen.runlog.row import Row, check_row
from batchgen.runlog.writer import RunLogWriter

_PY = {
    pa.string(): str,
    pa.int32(): int,
    pa.int64(): int,
    pa.float64(): float,
    pa.bool_(): bool,
    schema.TS: float,
    pa.list_(pa.string()): list[str],
}


def good(**kw: Any) -> dict[str, Any]:
    return {"job_id": "j1", "status": "ok", "final": True, "attempt": 1, **kw}


def test_row_type_has_every_column_of_the_schema_with_its_type() -> None:
    hints = typing.get_type_hints(Row)
    assert list(hints) == list(schema.COLUMNS)
    for field in schema.SCHEMA:
        assert _PY[field.type] in typing.get_args(hints[field.name]) or (
            hints[field.name] is _PY[field.type]
        ), field.name


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("attempt", "1", "int"),
        ("attempt", True, "int"),  # a bool is not a count
        ("attempt", 1.0, "int"),
        ("final", 1, "bool"),
        ("latency_s", "1.5", "float or int"),
        ("queued_at", "2026-01-01", "float or int or datetime"),
        ("image_paths", "images/a.png", "list"),
        ("prompt", b"bytes", "str"),
    ],
)
def test_a_wrong_type_raises_naming_column_value_type_and_expected(
    column: str, value: Any, expected: str
) -> None:
    with pytest.raises(TypeError) as info:
        check_row(good(**{column: value}))
    text = str(info.value)
    assert f"column {column!r}" in text
    assert f"got {type(value).__name__}" in text
    assert f"expected {expected} or None" in text
    assert "'j1'" in text  # the job


def test_values_out_of_range_and_odd_items_are_refused() -> None:
    with pytest.raises(ValueError, match=r"'http_status' \(int32\).*outside"):
        check_row(good(http_status=2**31))
    with pytest.raises(ValueError, match=r"'image_bytes' \(int64\).*outside"):
        check_row(good(image_bytes=2**63))
    with pytest.raises(ValueError, match="'cost_usd'"):
        check_row(good(cost_usd=2**60))  # not exact as a float64
    with pytest.raises(TypeError, match="items must be str"):
        check_row(good(image_paths=["a.png", 3]))
    with pytest.raises(ValueError, match="not a finite time"):
        check_row(good(finished_at=float("inf")))


def test_unknown_and_missing_columns_and_bad_status_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown column 'latency'"):
        check_row(good(latency=1.0))
    with pytest.raises(ValueError, match="no 'job_id'"):
        check_row({"status": "ok"})
    with pytest.raises(ValueError, match="no 'status'"):
        check_row({"job_id": "j"})
    with pytest.raises(ValueError, match="status 'done'"):
        check_row(good(status="done"))


def test_what_the_table_takes_passes() -> None:
    check_row(good())
    check_row(
        good(
            run_id=None,
            session=2,
            queued_at=1_767_225_600.5,
            started_at=1_767_225_600,
            finished_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            latency_s=2,
            wait_s=float("nan"),
            image_paths=["images/j1_0.png"],
            input_hashes=None,
            cost_usd=0.04,
            vars='{"a":"b"}',
        )
    )


def test_the_writer_refuses_a_bad_row_and_keeps_the_good_ones(tmp_path: Path) -> None:
    from batchgen.runlog.reader import read_log

    with RunLogWriter(tmp_path / "log", run_id="r", session=1, flush_interval=3600) as w:
        w.append(good(job_id="a"))
        with pytest.raises(TypeError, match="column 'n'"):
            w.append(good(job_id="b", n="4"))
        w.append(good(job_id="c"))
        assert w.unwritten == 2
    assert read_log(tmp_path / "log", ["job_id"])["job_id"].to_pylist() == ["a", "c"]


def test_score_rows_are_checked_against_their_own_schema(tmp_path: Path) -> None:
    from batchgen.quality.store import ScoreStore

    store = ScoreStore(tmp_path, session=1)
    row = {"job_id": "j", "image_path": "images/j_0.png", "status": "ok", "score": 7.0}
    with pytest.raises(TypeError, match=r"score row for job 'j': column 'score' \(double\)"):
        store.add([{**row, "score": "7"}])
    with pytest.raises(ValueError, match=r"unknown column 'grade'.*quality/store\.py"):
        store.add([{**row, "grade": 7}])
    store.add([row])
    assert store.rows_written == 1


def test_a_row_of_a_shape_seen_before_is_still_checked_value_by_value() -> None:
    # the first row of each shape is checked in full and its shape remembered; the rows after
    # it (same columns, same types) must still be refused for what their types cannot show
    shape = {"http_status": 200, "image_paths": ["a.png"], "finished_at": 1.0, "status": "ok"}
    check_row(good(**shape))
    check_row(good(**shape))  # the remembered shape
    with pytest.raises(ValueError, match=r"'http_status' \(int32\).*outside"):
        check_row(good(**{**shape, "http_status": 2**31}))
    with pytest.raises(TypeError, match="items must be str"):
        check_row(good(**{**shape, "image_paths": ["a.png", 3]}))
    with pytest.raises(ValueError, match="not a finite time"):
        check_row(good(**{**shape, "finished_at": float("-inf")}))
    with pytest.raises(ValueError, match="status 'done' is not one of error, ok, skipped"):
        check_row(good(**{**shape, "status": "done"}))
    with pytest.raises(TypeError, match="column 'http_status'"):
        check_row(good(**{**shape, "http_status": "200"}))  # a new shape: checked in full
