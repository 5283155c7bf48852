"""The crash-safe Parquet log: writer durability, readers, compaction, crash points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from batchgen import faultpoints
from batchgen.runlog import files, schema
from batchgen.runlog.reader import log_files, read_log
from batchgen.runlog.table import rows_to_table
from batchgen.runlog.writer import RunLogError, RunLogWriter, inflight_path


def row(job_id: str, **kw: object) -> dict:
    return {"job_id": job_id, "status": "ok", "final": True, "fingerprint": "f-" + job_id, **kw}


def poll(predicate, deadline_s: float = 10.0):
    """Wait for a background thread's effect, bounded (no fixed sleeps)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    pytest.fail(f"condition not met within {deadline_s}s")


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "run" / "log"


def test_rows_visible_to_fresh_reader_after_background_flush(log_dir: Path) -> None:
    w = RunLogWriter(log_dir, run_id="r1", session=1, flush_interval=0.05)
    try:
        w.append(row("a", attempt=1))
        w.append(row("b", attempt=2))
        t = poll(lambda: (t := read_log(log_dir)).num_rows == 2 and t)
        assert t["job_id"].to_pylist() == ["a", "b"]
        # writer fills run_id/session for rows that leave them out
        assert set(t["run_id"].to_pylist()) == {"r1"} and set(t["session"].to_pylist()) == {1}
        assert t.schema.equals(schema.SCHEMA)
    finally:
        w.close()


def test_flush_rows_threshold_wakes_the_writer(log_dir: Path) -> None:
    w = RunLogWriter(log_dir, run_id="r", session=1, flush_interval=3600, flush_rows=50)
    try:
        for i in range(49):
            w.append(row(f"j{i}"))
        assert read_log(log_dir).num_rows == 0  # nothing is written before a trigger
        w.append(row("j49"))
        poll(lambda: read_log(log_dir).num_rows == 50)
    finally:
        w.close()


def test_timestamps_are_converted_in_bulk_to_utc_microseconds(log_dir: Path) -> None:
    t0 = 1_767_225_600.123456  # 2026-01-01T00:00:00.123456Z
    with RunLogWriter(log_dir, run_id="r", session=1, flush_interval=3600) as w:
        w.append(row("a", queued_at=t0, started_at=t0 + 1.5, finished_at=None))
        w.append(row("b", queued_at=float("nan")))
    t = read_log(log_dir, ["queued_at", "started_at", "finished_at"])
    assert t.schema.field("queued_at").type == pa.timestamp("us", tz="UTC")
    micros = pc.cast(t["queued_at"], pa.int64()).to_pylist()
    assert micros == [1_767_225_600_123_456, None]
    assert pc.cast(t["started_at"], pa.int64())[0].as_py() == 1_767_225_601_623_456
    assert t["finished_at"].null_count == 2


def test_bad_values_are_refused_at_append_naming_the_column(log_dir: Path) -> None:
    with RunLogWriter(log_dir, run_id="r", session=1, flush_interval=3600) as w:
        with pytest.raises(TypeError, match=r"'http_status' \(int32\) got str 'not-a-number'"):
            w.append(row("a", http_status="not-a-number", latency_s=1.25))
        with pytest.raises(ValueError, match=r"unknown column 'bogus_column'.*schema.py"):
            w.append(row("b", http_status=500, bogus_column=1))
        w.append(row("c", http_status=500))
    assert read_log(log_dir, ["job_id"])["job_id"].to_pylist() == ["c"]  # nothing half-kept


def test_bad_values_become_null_and_are_reported_not_fatal() -> None:
    # the table builder stays tolerant (a second line behind the check at append)
    rows = [
        row("a", http_status="not-a-number", latency_s=1.25),
        row("b", http_status=500, bogus_column=1),
    ]
    t, problems = rows_to_table(rows, run_id="r", session=1)
    assert t["http_status"].to_pylist() == [None, 500]
    assert t["latency_s"].to_pylist() == [1.25, None]
    assert any("http_status" in p and "not-a-number" in p for p in problems)
    assert any("bogus_column" in p and "schema.py" in p for p in problems)


def test_concurrent_appends_are_all_written_once(log_dir: Path) -> None:
    w = RunLogWriter(log_dir, run_id="r", session=1, flush_interval=0.005, compact_every=5)

    def produce(k: int) -> None:
        for i in range(3000):
            w.append(row(f"t{k}-{i}", attempt=i))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    w.close()
    t = read_log(log_dir, ["job_id", "attempt"])
    assert t.num_rows == 12_000
    assert pc.count_distinct(t["job_id"]).as_py() == 12_000
    # per producer, rows keep their append order across parts and compactions
    for k in range(4):
        mine = t.filter(pc.starts_with(t["job_id"], f"t{k}-"))
        assert mine["attempt"].to_pylist() == list(range(3000))
    assert [p.name.split("-")[0] for p in log_files(log_dir)] == ["compact"]


def test_incremental_compaction_keeps_order_and_close_leaves_one_file(log_dir: Path) -> None:
    w = RunLogWriter(log_dir, run_id="r", session=3, flush_interval=3600, compact_every=3)
    for i in range(8):
        w.append(row(f"j{i}"))
        w.flush()
    names = [p.name for p in log_files(log_dir)]
    # 8 parts: two compactions of 3, two parts left
    assert [n.split("-")[0] for n in names] == ["compact", "compact", "part", "part"]
    assert read_log(log_dir, ["job_id"])["job_id"].to_pylist() == [f"j{i}" for i in range(8)]
    final = w.close()
    assert final is not None and [p.name for p in log_files(log_dir)] == [final.name]
    assert read_log(log_dir, ["job_id"])["job_id"].to_pylist() == [f"j{i}" for i in range(8)]
    assert pq.ParquetFile(final).metadata.row_group(0).column(0).compression == "ZSTD"


def test_readable_by_dataset_duckdb_and_pandas_while_writer_is_open(log_dir: Path) -> None:
    w = RunLogWriter(log_dir, run_id="r", session=1, flush_interval=3600)
    try:
        for i in range(30):
            w.append(row(f"j{i}", image_paths=[f"images/j{i}_0.png"], cost_usd=0.01))
            if i % 10 == 9:
                w.flush()
        w.append(row("unflushed"))
        # a writer's half-written temp file must be invisible to all three
        (log_dir / ".part-00001-000099.parquet.tmp").write_bytes(b"PAR1 half a file")
        assert ds.dataset(log_dir, format="parquet").to_table().num_rows == 30
        glob = str(log_dir / "*.parquet")
        con = duckdb.connect()
        query = f"select count(*), sum(cost_usd) from read_parquet('{glob}')"
        n, cost = con.execute(query).fetchone()
        con.close()
        assert n == 30 and cost == pytest.approx(0.30)
        df = pd.read_parquet(log_dir)
        assert len(df) == 30 and list(df["image_paths"].iloc[0]) == ["images/j0_0.png"]
    finally:
        w.close()


def test_empty_log_reads_as_empty_table_with_schema(tmp_path: Path) -> None:
    assert read_log(tmp_path).schema.equals(schema.SCHEMA)
    t = read_log(tmp_path, ["job_id", "status"])
    assert t.num_rows == 0 and t.column_names == ["job_id", "status"]
    with pytest.raises(KeyError, match=r"schema\.py"):
        read_log(tmp_path, ["job_idd"])


def test_read_log_accepts_run_dir_and_pushes_filter(log_dir: Path) -> None:
    with RunLogWriter(log_dir, run_id="r", session=1, flush_interval=3600) as w:
        for i in range(10):
            w.append(row(f"j{i}", status="ok" if i % 2 else "error"))
    t = read_log(log_dir.parent, ["job_id"], filter=pc.field("status") == "error")
    assert t["job_id"].to_pylist() == ["j0", "j2", "j4", "j6", "j8"]


def test_failed_flush_keeps_rows_and_succeeds_once_fixed(log_dir: Path) -> None:
    w = RunLogWriter(log_dir, run_id="r", session=1, flush_interval=3600, compact_every=None)
    w.append(row("a"))
    w.flush()
    w.append(row("b"))
    hidden = log_dir.with_name("log-away")
    log_dir.rename(hidden)
    log_dir.write_text("not a directory")  # every write into log/ now fails
    with pytest.raises(RunLogError, match="free disk space or fix permissions"):
        w.flush()
    assert isinstance(w.last_error, OSError)
    log_dir.unlink()
    hidden.rename(log_dir)
    w.append(row("c"))
    w.close()
    assert read_log(log_dir, ["job_id"])["job_id"].to_pylist() == ["a", "b", "c"]


def test_inflight_file_tracks_the_live_set_plus_the_part_being_written(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    w = RunLogWriter(log_dir, run_id="r", session=2, flush_interval=3600)
    live = {"x", "y"}
    w.set_inflight(live)
    w.append(row("done-1"))
    w.flush()
    path = inflight_path(tmp_path / "state", 2)
    assert set(json.loads(path.read_text())["job_ids"]) == {"x", "y", "done-1"}
    live.discard("x")
    live.add("z")
    w.flush()  # no rows, but the set changed: rewritten
    assert set(json.loads(path.read_text())["job_ids"]) == {"y", "z"}
    w.set_inflight(lambda: ["only"])
    w.close()
    assert json.loads(path.read_text())["job_ids"] == ["only"]
    assert not list((tmp_path / "state").glob(".*"))  # no temp left behind


def test_append_after_close_names_the_job(log_dir: Path) -> None:
    w = RunLogWriter(log_dir, run_id="r", session=1)
    w.close()
    with pytest.raises(RuntimeError, match="'late'"):
        w.append(row("late"))


def test_faultpoints_spec_is_validated_and_counts_hits() -> None:
    with pytest.raises(ValueError, match="BATCHGEN_CRASH_AT"):
        faultpoints.arm("flush:before_rename")
    faultpoints.arm("")
    faultpoints.hit("flush:before_rename")  # unarmed: nothing happens


# ---- crash tests: a child process dies at a fault point; the parent reads what is left ----

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from batchgen.runlog.writer import RunLogWriter
    w = RunLogWriter(Path(sys.argv[1]), run_id="r", session=1, flush_interval=3600,
                     compact_every=None)
    w.set_inflight({"in-flight"})
    for b in range(4):
        for i in range(25):
            w.append({"job_id": f"b{b}-{i}", "status": "ok", "final": True})
        w.flush()
        print(f"flushed {b}", flush=True)
    w.close()
    print("closed", flush=True)
    """
)


def run_child(log_dir: Path, crash_at: str) -> tuple[int, list[int]]:
    env = {**os.environ, faultpoints.ENV: crash_at}
    p = subprocess.run(
        [sys.executable, "-c", CHILD, str(log_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    flushed = [int(line.split()[1]) for line in p.stdout.splitlines() if line.startswith("flushed")]
    return p.returncode, flushed


def job_ids(log_dir: Path) -> list[str]:
    return read_log(log_dir, ["job_id"])["job_id"].to_pylist()


def duckdb_count(log_dir: Path) -> int:
    con = duckdb.connect()
    try:
        query = f"select count(*) from read_parquet('{log_dir}/*.parquet')"
        return con.execute(query).fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize(
    ("crash_at", "batches_flushed", "batches_on_disk"),
    [
        ("flush:before_rename:3", 2, 2),  # the 3rd part never got its name: lost, not torn
        ("flush:after_rename:3", 2, 3),  # renamed just before death: it is there, once
        ("inflight:before_rename:2", 1, 1),
        ("compact:before_rename:1", 4, 4),
        ("compact:after_rename:1", 4, 4),
        ("compact:mid_delete:1", 4, 4),
    ],
)
def test_crash_at_each_point_loses_nothing_flushed_and_duplicates_nothing(
    tmp_path: Path, crash_at: str, batches_flushed: int, batches_on_disk: int
) -> None:
    log_dir = tmp_path / "log"
    code, flushed = run_child(log_dir, crash_at)
    assert code == faultpoints.EXIT_CODE
    assert flushed == list(range(batches_flushed))
    expected = [f"b{b}-{i}" for b in range(batches_on_disk) for i in range(25)]
    assert job_ids(log_dir) == expected  # exactly once, in order, for batchgen's reader

    rec = files.compact_all(log_dir)  # what resume does first, under the lock
    assert not list(log_dir.glob(".*"))  # temp files gone
    assert job_ids(log_dir) == expected
    assert len(log_files(log_dir)) == 1
    # either the crash left a finished compact file (its sources are deleted) or one is made
    assert bool(rec.replaced_deleted) != bool(rec.compacted)
    assert duckdb_count(log_dir) == len(expected)  # plain globbing is clean after recovery


def test_plain_duckdb_can_double_count_only_until_recovery(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    code, _ = run_child(log_dir, "compact:after_rename:1")
    assert code == faultpoints.EXIT_CODE
    assert duckdb_count(log_dir) == 200  # compact file and its sources both on disk
    assert len(job_ids(log_dir)) == 100
    rec = files.recover(log_dir)
    assert len(rec.replaced_deleted) == 4 and duckdb_count(log_dir) == 100


def test_new_session_after_crash_appends_and_compaction_keeps_sessions_apart(
    tmp_path: Path,
) -> None:
    log_dir = tmp_path / "log"
    run_child(log_dir, "flush:after_rename:4")
    files.compact_all(log_dir)
    with RunLogWriter(log_dir, run_id="r", session=2, flush_interval=3600) as w:
        w.append({"job_id": "s2", "status": "ok", "final": True})
    t = read_log(log_dir, ["job_id", "session"])
    assert t.num_rows == 101 and t["session"].to_pylist()[-1] == 2
    assert [p.name[:13] for p in log_files(log_dir)] == ["compact-00001", "compact-00002"]


def test_reader_sees_a_consistent_prefix_while_the_writer_flushes_and_compacts(
    log_dir: Path,
) -> None:
    w = RunLogWriter(log_dir, run_id="r", session=1, flush_interval=0.001, compact_every=2)
    reads: list[int] = []
    appended = 0

    def produce() -> None:
        nonlocal appended
        # keep writing (and compacting) while the reader reads
        while len(reads) < 60 or w.parts_written < 20:
            for _ in range(50):
                w.append(row(f"j{appended}", attempt=appended))
                appended += 1
            time.sleep(0.0005)  # let the writer thread interleave flushes and compactions

    th = threading.Thread(target=produce)
    th.start()
    while th.is_alive():
        got = read_log(log_dir, ["attempt"])["attempt"].to_numpy()
        # rows come from one producer in order: any consistent snapshot is 0..k-1
        bad = np.flatnonzero(got != np.arange(len(got)))
        assert not len(bad), f"reader saw duplicated/missing rows at {bad[:5]}: {got[bad[:5]]}"
        reads.append(len(got))
    th.join()
    w.close()
    assert read_log(log_dir).num_rows == appended
    assert len(set(reads)) >= 2, f"the reads never saw the log grow: {reads}"


def test_a_compact_of_a_compact_keeps_covering_the_first_ones_leftovers(log_dir: Path) -> None:
    w = RunLogWriter(log_dir, run_id="r", session=1, flush_interval=3600, compact_every=None)
    for i in range(3):
        w.append(row(f"j{i}"))
        w.flush()
    p0, p1, p2 = files.visible_files(log_dir)
    c1 = files.compact(log_dir, 1, [p0, p1])  # while p2 exists: rows must keep their order
    # as if a crash had stopped c1's deletes after the first: p1's copy is back on disk
    pq.write_table(pq.read_table(c1).slice(1, 1), log_dir / p1.name)
    assert job_ids(log_dir) == ["j0", "j1", "j2"]
    c1_file = files.LogFile(1, p1.seq, "compact", c1)
    c2 = files.compact(log_dir, 1, [c1_file, p2])  # deletes c1, leaves p1
    assert (log_dir / p1.name).exists() and not c1.exists()
    assert p1.name in files.replaced_by(c2)
    assert job_ids(log_dir) == ["j0", "j1", "j2"]
    w.close(compact=False)


def test_compacting_a_session_whose_last_file_is_a_compact_file(tmp_path: Path) -> None:
    """Two mid-run compactions and no part after them: the session's final compaction must
    not collide with the name of its own last source."""
    import pyarrow.parquet as pq

    from batchgen.runlog import files

    log_dir = tmp_path / "log"
    log_dir.mkdir()
    w = RunLogWriter(log_dir, run_id="r", session=1, flush_interval=3600, compact_every=2)
    for i in range(4):  # four parts: two mid-run compactions, the last one ending the session
        w.append({"job_id": f"j{i}", "status": "ok", "final": True})
        w.flush()
    kinds = [f.kind for f in files.visible_files(log_dir)]
    assert kinds == ["compact", "compact"]
    w.close(compact=True)
    visible = files.visible_files(log_dir)
    assert [f.kind for f in visible] == ["compact"]
    table = pq.read_table(visible[0].path)
    assert table["job_id"].to_pylist() == ["j0", "j1", "j2", "j3"]
