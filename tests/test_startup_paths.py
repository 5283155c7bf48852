"""The cheaper start-up paths give exactly what the old ones gave.

* the log's columns built from buffers equal ``pa.array``'s, value for value (and values the
  buffer path does not know still go through ``pa.array``);
* ``check_job_file`` reads the job file once, and its quote, index and problems equal those
  of a separate validation, scan and quote;
* ``estimate_job`` with its per-group cache equals the uncached formula.
"""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import batchgen.jobs.validate as validate_module
from batchgen.cli.prepare import JobFileProblems, check_job_file
from batchgen.jobs import iter_jobs, job_index
from batchgen.jobs.model import Job
from batchgen.money import load_prices
from batchgen.money.cost import (
    _candidates,
    _expected_size,
    _text_input_usd,
    assumed_quality,
    estimate_job,
    quoted_input_tokens,
)
from batchgen.money.quote import quote
from batchgen.runlog import schema, table
from batchgen.runlog.jobindex import IndexBuilder

# ---- columns from buffers ------------------------------------------------------------------


def _sample(rng: random.Random, kind: pa.DataType, null_share: float) -> Any:
    if rng.random() < null_share:
        return None
    if kind == pa.string():
        return rng.choice(["", "ok", "gpt-image-1", "naïve café ☕", "日本語", "x" * 300])
    if kind == pa.int32():
        return rng.choice([0, 1, -1, 200, 2**31 - 1, -(2**31)])
    if kind == pa.int64():
        return rng.choice([0, 7, 2**63 - 1, -(2**63), 49_152])
    if kind == pa.float64():
        return rng.choice([0.0, -0.0, 1.5, 1e-9, 1e300, math.inf, math.nan, 3, 2**53])
    if kind == pa.bool_():
        return rng.random() < 0.5
    if kind == pa.list_(pa.string()):
        return [rng.choice(["images/a_0.png", "ü.webp", None]) for _ in range(rng.randrange(4))]
    raise AssertionError(kind)


KINDS = [pa.string(), pa.int32(), pa.int64(), pa.float64(), pa.bool_(), pa.list_(pa.string())]


@pytest.mark.parametrize("kind", KINDS, ids=str)
@pytest.mark.parametrize("null_share", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 1000])
def test_columns_from_buffers_equal_pa_array(
    kind: pa.DataType, null_share: float, size: int
) -> None:
    rng = random.Random(f"{kind}-{null_share}-{size}")
    values = [_sample(rng, kind, null_share) for _ in range(size)]
    built = table._from_buffers(values, kind)
    assert built is not None
    built.validate(full=True)
    expected = pa.array(values, kind)
    assert built.type == expected.type
    assert built.null_count == expected.null_count
    # equals() treats NaN as unequal to itself: compare what a reader gets
    assert built.to_pylist().__repr__() == expected.to_pylist().__repr__()


@pytest.mark.parametrize(
    ("kind", "odd"),
    [
        (pa.int32(), True),  # a bool in an int column: pa.array refuses it
        (pa.int32(), 2**31),  # does not fit
        (pa.int64(), 1.0),  # a float in an int column: pa.array takes it, if integral
        (pa.float64(), 2**53 + 1),  # not exact as a float: pa.array refuses it
        (pa.float64(), Decimal("1.5")),
        (pa.string(), b"bytes"),
        (pa.string(), "\ud800"),  # a lone surrogate has no UTF-8
        (pa.bool_(), 1),
        (pa.list_(pa.string()), ("a", "b")),
        (pa.list_(pa.string()), [1]),
    ],
)
def test_values_the_buffer_path_does_not_know_go_to_pa_array(kind: pa.DataType, odd: Any) -> None:
    assert table._from_buffers([None, odd], kind) is None


def _timestamps_via_compute(values: list[Any]) -> pa.Array:
    seconds = pa.array(values, pa.float64(), from_pandas=True)
    micros = pc.round(pc.multiply(seconds, 1_000_000.0)).cast(pa.int64())
    return micros.cast(schema.TS)


def test_timestamps_from_buffers_round_as_compute_does() -> None:
    rng = random.Random(5)
    now = 1_764_300_000.0
    values: list[Any] = [now + rng.random() * 1e5 for _ in range(2000)]
    # exact half microseconds (ties go to even), NaN and None (null), ints, the epoch
    values += [now + 0.0000005, 0.0000015, 0.0000025, 2.5e-6, -0.0000005, math.nan, None, 0, 17]
    built = table._timestamps_from_buffers(values)
    assert built is not None
    built.validate(full=True)
    assert built.equals(_timestamps_via_compute(values))
    assert table._timestamps_from_buffers([None, None]).equals(pa.nulls(2, schema.TS))
    for odd in (math.inf, "2026-01-01", True, 2**60):
        assert table._timestamps_from_buffers([now, odd]) is None


def _row(i: int, rng: random.Random) -> dict[str, Any]:
    ok = rng.random() < 0.7
    return {
        "job_id": f"job-{i}",
        "job_line": i + 1,
        "fingerprint": f"{i:064x}",
        "attempt": 1,
        "status": "ok" if ok else "error",
        "final": ok or rng.random() < 0.5,
        "error_class": None if ok else "server",
        "http_status": 200 if ok else 500,
        "model": "gpt-image-1",
        "prompt": f"a fox №{i}",
        "n": 1,
        "queued_at": 1.7e9 + i / 3,
        "started_at": 1.7e9 + i / 3 + 0.25,
        "finished_at": None,
        "latency_s": rng.random(),
        "image_paths": [f"images/job-{i}_0.png"] if ok else None,
        "image_bytes": 49_152 if ok else None,
        "cost_usd": 0.011 if ok else 0.0,
    }


def test_a_log_batch_equals_the_pa_array_table() -> None:
    rng = random.Random(11)
    rows = [_row(i, rng) for i in range(500)]
    built, problems = table.rows_to_table(rows, run_id="r1", session=2)
    assert problems == []
    expected = []
    for field in schema.SCHEMA:
        default = {"run_id": "r1", "session": 2}.get(field.name)
        values = [r.get(field.name, default) for r in rows]
        if field.type == schema.TS:
            expected.append(_timestamps_via_compute(values))
        else:
            expected.append(pa.array(values, field.type))
    assert built.equals(pa.Table.from_arrays(expected, schema=schema.SCHEMA))


def test_a_bad_value_is_still_nulled_and_reported() -> None:
    rows = [{"job_id": "a", "attempt": 2**40, "queued_at": "yesterday"}, {"job_id": "b"}]
    built, problems = table.rows_to_table(rows, run_id="r", session=1)
    assert built.column("attempt").to_pylist() == [None, None]
    assert built.column("queued_at").to_pylist() == [None, None]
    assert any("attempt" in p for p in problems) and any("queued_at" in p for p in problems)


def test_the_index_builder_equals_pa_array() -> None:
    builder = IndexBuilder(chunk=3)
    entries = [(f"id-{i}-é", f"{i:064x}", i + 1) for i in range(10)]
    for entry in entries:
        builder.add(*entry)
    built = builder.table()
    ids, fps, lines = (list(c) for c in zip(*entries, strict=True))
    expected = pa.table(
        [pa.array(ids, pa.string()), pa.array(fps, pa.string()), pa.array(lines, pa.int64())],
        names=["job_id", "job_fp", "line"],
    )
    assert built.equals(expected)


# ---- one pass over the job file ------------------------------------------------------------


def _jobs_file(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_check_job_file_reads_the_file_once_and_agrees_with_separate_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        {"prompt": f"a red boat {i}", "model": m, "quality": q, "size": s}
        for i, (m, q, s) in enumerate(
            [
                ("gpt-image-1", "low", "1024x1024"),
                ("gpt-image-1", None, None),
                ("dall-e-3", "hd", "1792x1024"),
                ("gpt-image-1-mini", "high", "1024x1536"),
            ]
            * 5
        )
    ]
    path = _jobs_file(tmp_path / "jobs.jsonl", [{k: v for k, v in d.items() if v} for d in lines])
    prices = load_prices()
    defaults: dict[str, Any] = {"model": None, "size": None, "quality": None, "n": None}
    scans: list[str] = []
    real_scan = validate_module._scan

    def counting(path: Path, *args: Any, **kwargs: Any) -> Any:
        scans.append(str(path))
        return real_scan(path, *args, **kwargs)

    monkeypatch.setattr(validate_module, "_scan", counting)
    index = IndexBuilder()
    checked = check_job_file(path, defaults, prices, rpm=30.0, concurrency=4, index=index)
    assert len(scans) == 1, "check_job_file read the job file more than once"
    monkeypatch.setattr(validate_module, "_scan", real_scan)
    assert checked.quote == quote(iter_jobs(path, defaults), prices, rpm=30.0, concurrency=4)
    assert checked.jobs == 20 and checked.quote.jobs == 20
    stored = index.table()
    assert list(zip(*(stored.column(i).to_pylist() for i in range(3)), strict=True)) == list(
        job_index(path, defaults)
    )
    only = frozenset(job.id for job in list(iter_jobs(path, defaults))[::2])
    partial = check_job_file(path, defaults, prices, only=only)
    expected = quote((j for j in iter_jobs(path, defaults) if j.id in only), prices)
    assert partial.quote == expected and partial.jobs == 20


def test_shape_problems_win_over_model_problems_in_one_pass(tmp_path: Path) -> None:
    path = _jobs_file(
        tmp_path / "jobs.jsonl",
        [{"prompt": "ok", "model": "dall-e-3", "n": 4}, {"prompt": 5}, {"prompt": "fine"}],
    )
    with pytest.raises(JobFileProblems) as raised:
        check_job_file(path, {"model": "gpt-image-1"}, load_prices())
    text = "\n".join(raised.value.lines)
    assert f"{path}:2:" in text  # the shape problem, with its line
    assert "split it" not in text  # line 1's model problem is not mixed in
    alone = _jobs_file(tmp_path / "alone.jsonl", [{"prompt": "ok", "model": "dall-e-3", "n": 4}])
    with pytest.raises(JobFileProblems) as raised:
        check_job_file(alone, {}, load_prices())
    assert f"{alone}:1:" in raised.value.lines[0] and "split it" in raised.value.lines[0]


# ---- estimate_job's cache ------------------------------------------------------------------


def _one_request(entry: Any, job: Job, quality: str, size: str, input_tokens: int) -> float | None:
    """One request's cost as the module computed it before the cache (the reference)."""
    if entry.billing == "tokens":
        tokens = entry.image_output_tokens(quality, size)
        if tokens is None:
            return None
        return entry.text_input_usd(input_tokens) + entry.image_output_usd(tokens) * job.n
    price = entry.image_price(quality, size)
    return None if price is None else price * job.n


def _uncached_estimate(prices: Any, job: Job) -> tuple[float, float, float] | None:
    entry = prices.get(job.model)
    if entry is None:
        return None
    known = [
        c
        for q, s in _candidates(entry, job)
        if (c := _one_request(entry, job, q, s, 0)) is not None
    ]
    if not known:
        return None
    tokens = quoted_input_tokens(job.prompt)
    text_in = _text_input_usd(entry, tokens)
    expected = _one_request(
        entry, job, assumed_quality(entry, job.quality), _expected_size(entry, job), tokens
    )
    high = text_in + max(known)
    return text_in + min(known), expected if expected is not None else high, high


def test_estimate_job_equals_the_uncached_formula() -> None:
    prices = load_prices()
    checked = 0
    for model in sorted(prices.models):
        entry = prices.models[model]
        for quality in (None, "auto", *entry.known_qualities()):
            for size in (None, "auto", "1024x1024", "1536x1024", "1792x1024", "256x256"):
                for n in (1, 3):
                    for prompt in ("a cat", "a much longer prompt about a lighthouse " * 7):
                        body = {"prompt": prompt, "model": model, "n": n}
                        body |= {k: v for k, v in (("quality", quality), ("size", size)) if v}
                        job = Job(f"j{checked}", 1, body, "fp")
                        for _ in range(2):  # cold, then from the cache
                            got = estimate_job(prices, job)
                            want = _uncached_estimate(prices, job)
                            assert (got and (got.low, got.expected, got.high)) == want, body
                        checked += 1
    assert checked > 100
