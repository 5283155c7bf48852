"""Resume state from the log: job states, what remains, in-flight at a crash, orphans."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from batchgen.runlog import schema
from batchgen.runlog.reader import read_log
from batchgen.runlog.rundir import RunDir
from batchgen.runlog.state import (
    crashed_inflight,
    find_orphans,
    job_states,
    remaining,
    states_from_table,
)
from batchgen.runlog.writer import RunLogWriter


def r(
    job_id: str,
    status: str,
    final: bool,
    ec: str | None = None,
    fp: str | None = None,
    attempt: int = 1,
) -> dict:
    return {
        "job_id": job_id,
        "status": status,
        "final": final,
        "error_class": ec,
        "fingerprint": fp or f"fp-{job_id}",
        "attempt": attempt,
    }


SESSION_1 = [
    r("a", "ok", True),
    r("b", "error", True, "content_policy"),
    r("c", "error", False, "server"),
    r("c", "error", True, "server", attempt=2),
    r("d", "skipped", True, "budget"),
    r("e", "error", False, "timeout"),  # the run died while e was retrying
    r("f", "ok", True, fp="fp-f-old"),
    r("g", "error", True, "auth"),
    r("h", "skipped", True, "cancelled"),
    r("gone", "ok", True),
    r("x", "ok", True),
]
SESSION_2 = [
    r("c", "ok", True),  # a resume finished c
    r("h", "error", False, "network"),  # sent again, then the run died
]
JOB_FILE = [(j, f"fp-{j}", i + 1) for i, j in enumerate("abcdefgh")] + [("new", "fp-new", 9)]


def write_sessions(log_dir: Path) -> None:
    for session, rows in ((1, SESSION_1), (2, SESSION_2)):
        with RunLogWriter(log_dir, run_id="r", session=session, flush_interval=3600) as w:
            for row in rows:
                w.append(row)


def test_job_states_counts_on_a_synthetic_log(tmp_path: Path) -> None:
    write_sessions(tmp_path / "log")
    st = job_states(tmp_path)
    assert len(st) == 10
    assert st.counts() == {
        "done": 5,
        "failed": 1,
        "retryable_failed": 0,
        "pending": 2,
        "unfinished": 2,
    }
    assert st.inflight_at_crash == frozenset()  # no inflight files were written


def test_states_per_job(tmp_path: Path) -> None:
    write_sessions(tmp_path / "log")
    st = job_states(tmp_path)
    by_id = dict(zip(st.table["job_id"].to_pylist(), st.table["state"].to_pylist(), strict=True))
    assert by_id == {
        "a": "done",
        "b": "failed",
        "c": "done",
        "d": "pending",
        "e": "unfinished",
        "f": "done",
        "g": "pending",
        "h": "unfinished",
        "gone": "done",
        "x": "done",
    }
    assert st.done() == {"a": "fp-a", "c": "fp-c", "f": "fp-f-old", "gone": "fp-gone", "x": "fp-x"}
    assert st.ids("failed") == {"b"}


def test_a_retryable_class_after_exhausted_attempts_is_retryable_failed() -> None:
    t = pa.Table.from_pylist(
        [
            {**r("k", "error", False, "rate_limit"), "session": 1},
            {**r("k", "error", True, "rate_limit", attempt=2), "session": 1},
            {**r("m", "error", True, None), "session": 1},  # unknown class: safe to retry
        ],
        schema=schema.SCHEMA,
    )
    st = states_from_table(t)
    assert st.ids("retryable_failed") == {"k", "m"}


def test_remaining_runs_the_rest_and_reports_the_job_file_changes(tmp_path: Path) -> None:
    write_sessions(tmp_path / "log")
    st = job_states(tmp_path)
    index = [(j, "fp-f-new" if j == "f" else fp, line) for j, fp, line in JOB_FILE]
    rem = remaining(index, st, retry_failed=False)
    assert rem.run == {"d", "e", "f", "g", "h", "new"}
    assert rem.added == ("new",) and rem.edited == ("f",)
    assert rem.removed == ("gone", "x")
    assert (rem.skipped_done, rem.skipped_failed) == (2, 1)  # a, c; b
    assert rem.summary()["run"] == 6

    again = remaining(iter(index), st, retry_failed=True)
    assert again.run == rem.run | {"b"} and again.skipped_failed == 0


def test_remaining_on_an_empty_log_runs_everything(tmp_path: Path) -> None:
    st = job_states(tmp_path)
    rem = remaining(JOB_FILE, st)
    assert rem.run == {j for j, _, _ in JOB_FILE} and len(rem.added) == 9
    assert rem.removed == () and rem.edited == ()


def test_crashed_inflight_lists_unfinished_jobs_of_unended_sessions(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("{}\n")
    rd = RunDir(tmp_path / "run")
    rd.create(jobs, "0" * 64, 3, 3, {})
    s1 = rd.begin_session({}, ["batchgen", "run"])
    live = {"e", "x", "y"}
    w = RunLogWriter(rd.log_dir, run_id="r", session=s1, flush_interval=3600)
    w.set_inflight(live)
    w.append(r("x", "ok", True))
    w.append(r("e", "error", False, "server"))
    w.flush()  # the process "dies" here: no close, no end_session
    w.set_inflight(None)
    assert crashed_inflight(rd.path) == {"e", "y"}
    st = job_states(rd.path)
    assert st.inflight_at_crash == {"e", "y"}
    rem = remaining([("e", "fp-e", 1), ("x", "fp-x", 2)], st)
    assert rem.run == {"e"} and rem.possibly_billed_twice == {"e"}
    rd.mark_crashed()
    assert crashed_inflight(rd.path) == set()
    assert crashed_inflight(rd.path, sessions=[s1]) == {"e", "y"}
    w.close()


def png(color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, "PNG")
    return buf.getvalue()


def test_find_orphans_adopts_complete_decodable_sets_only(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in [
        "p_0.png",
        "p_1.png",
        "q_0.png",
        "q_1.png",
        "with_under_score_0.png",
        "done_0.png",
        "unwanted_0.png",
    ]:
        (images / name).write_bytes(png())
    (images / "s_0.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated garbage")
    (images / ".t_0.png.tmp").write_bytes(png())
    (images / "README").write_text("not an image name")
    wanted = {"p": 2, "q": 3, "s": 1, "with_under_score": 1, "done": 1, "t": 1}
    found = {o.job_id: o for o in find_orphans(images, {"done"}, wanted)}
    assert sorted(found) == ["p", "q", "s", "with_under_score"]
    assert found["p"].adoptable and [p.name for p in found["p"].paths] == ["p_0.png", "p_1.png"]
    assert found["p"].image_bytes == 2 * len(png())
    assert found["with_under_score"].adoptable
    assert not found["q"].adoptable and "missing index [2]" in found["q"].reason
    assert not found["s"].adoptable and "s_0.png does not decode" in found["s"].reason
    assert find_orphans(tmp_path / "absent", set(), wanted) == []


# ---- scale: 1M rows -----------------------------------------------------------------------

N = 1_000_000


def synthetic_log(log_dir: Path) -> None:
    """1M attempts of 900k jobs as one compact file, built column-wise (no Python rows)."""
    log_dir.mkdir(parents=True)
    idx = np.arange(N, dtype=np.int64)
    job = np.where(idx < 900_000, idx, idx - 900_000)  # last 100k rows: 2nd attempts
    job_ids = pc.binary_join_element_wise("job-", pa.array(job).cast(pa.string()), "")
    fps = pc.utf8_lpad(pa.array(job).cast(pa.string()), 64, "f")
    status = np.where(job % 10 == 0, "error", "ok")
    status = np.where(idx >= 900_000, "ok", status)  # the retries succeeded
    final = ~((job % 10 == 0) & (idx < 900_000) & (job < 100_000))
    cols = {
        "run_id": pa.array(np.full(N, "r")),
        "session": pa.array(np.ones(N, np.int32)),
        "job_id": job_ids,
        "fingerprint": fps,
        "status": pa.array(status),
        "final": pa.array(final),
        "error_class": pa.array(np.where(status == "error", "server", None)),
    }
    t = pa.table(
        {f.name: cols.get(f.name, pa.nulls(N, f.type)) for f in schema.SCHEMA}, schema=schema.SCHEMA
    )
    pq.write_table(
        t, log_dir / "compact-00001-000000.parquet", compression="zstd", row_group_size=131_072
    )


def test_one_million_rows_scan_and_resume_state_timing(tmp_path: Path) -> None:
    synthetic_log(tmp_path / "log")
    t0 = time.perf_counter()
    t = read_log(tmp_path, ["job_id", "status", "final", "fingerprint"])
    t1 = time.perf_counter()
    st = job_states(tmp_path)
    t2 = time.perf_counter()
    index = [(f"job-{i}", f"{i}".rjust(64, "f"), i + 1) for i in range(N)]
    t3 = time.perf_counter()
    rem = remaining(index, st)
    t4 = time.perf_counter()
    print(
        f"\n1M-row log: scan 4 columns {t1 - t0:.2f}s, job_states {t2 - t1:.2f}s, "
        f"build job index {t3 - t2:.2f}s, remaining {t4 - t3:.2f}s, "
        f"states+remaining total {t2 - t1 + t4 - t3:.2f}s"
    )
    assert t.num_rows == N
    # jobs < 100k ending in 0 failed once, then their 2nd attempt (the last 100k rows) was ok;
    # the other jobs ending in 0 failed with a retryable class; 900k.. were never reached
    assert len(st) == 900_000
    assert st.counts() == {
        "done": 820_000,
        "failed": 0,
        "retryable_failed": 80_000,
        "pending": 0,
        "unfinished": 0,
    }
    assert rem.added == tuple(f"job-{i}" for i in range(900_000, N))
    assert len(rem.run) == 180_000 and "job-100000" in rem.run and "job-10" not in rem.run
    assert rem.skipped_done == 820_000 and rem.edited == () and rem.removed == ()


def test_export_state_names_match_the_state_module() -> None:
    from batchgen.runlog import export, state

    assert {"ok": {state.DONE}, "failed": {state.FAILED, state.RETRYABLE_FAILED}} == {
        status: export.states_for(status) for status in ("ok", "failed")
    }
