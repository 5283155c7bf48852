"""The stored job index (`state/job-index.parquet`): `run` writes it, `resume` reads it instead
of rescanning the job file, and falls back to the scan (and rewrites it) when the file changed
or the index is missing or broken. The CLI runs in-process so `batchgen.jobs.job_index` can be
replaced: a resume that must not scan fails loudly if it does."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import batchgen.jobs
from batchgen.cli.main import main
from batchgen.jobs import job_index, sha256_file
from batchgen.runlog.jobindex import (
    IndexBuilder,
    build_index,
    index_path,
    read_index,
    write_index,
)
from batchgen.runlog.state import JobStates, remaining
from tests.runhelpers import MODEL_FLAGS, SECRET_KEY, ok_counts, sim_flags, write_jsonl_jobs

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "BATCHGEN_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the job-file scans resume makes (the real scan still runs)."""
    calls: list[str] = []
    real = batchgen.jobs.job_index

    def counting(path: Any, *args: Any, **kwargs: Any) -> Iterator[tuple[str, str, int]]:
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(batchgen.jobs, "job_index", counting)
    return calls


def _no_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        msg = "resume scanned the job file although the stored index matches it"
        raise AssertionError(msg)

    monkeypatch.setattr(batchgen.jobs, "job_index", refuse)


def _jobs(tmp_path: Path, count: int) -> Path:
    rows = [{"id": f"job-{i:02d}", "prompt": f"index test {i}"} for i in range(count)]
    return write_jsonl_jobs(tmp_path / "jobs.jsonl", rows)


def _run(run_dir: Path, jobs: Path, sim: Any) -> int:
    return main(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--concurrency",
            "1",
            "--yes",
            "--quiet",
        ]
    )


def _resume(run_dir: Path) -> int:
    return main(["resume", str(run_dir), "--yes", "--quiet"])


def _manifest(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


def _stopped_run(tmp_path: Path, make_sim: Any, count: int = 12) -> tuple[Path, Path, Any]:
    """A run stopped (quota) after 4 jobs, the rest pending; the simulator then recovers."""
    sim = make_sim(latency_mean=0.0, fail_after={"quota": 4}, seed=5)
    jobs = _jobs(tmp_path, count)
    run_dir = tmp_path / "run"
    assert _run(run_dir, jobs, sim) == 3
    assert len(ok_counts(run_dir)) == 4
    sim.update(fail_after={})
    return run_dir, jobs, sim


@pytest.mark.usefixtures("cli_env")
def test_run_writes_the_index_and_resume_uses_it_without_scanning(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, jobs, sim = _stopped_run(tmp_path, make_sim)
    manifest = _manifest(run_dir)
    defaults = manifest["settings"]["defaults"]
    stored = read_index(run_dir / "state", manifest["job_file_sha256"], defaults)
    assert stored is not None
    assert stored.to_pylist() == [
        {"job_id": i, "job_fp": fp, "line": line} for i, fp, line in job_index(jobs, defaults)
    ]

    _no_scan(monkeypatch)
    assert _resume(run_dir) == 0
    counts = ok_counts(run_dir)
    assert sorted(counts) == [f"job-{i:02d}" for i in range(12)]
    assert set(counts.values()) == {1}
    assert sim.stats["ok"] == 12  # the four done before the stop were not sent again


@pytest.mark.usefixtures("cli_env")
def test_an_edited_job_file_is_scanned_and_runs_exactly_the_added_and_edited_jobs(
    tmp_path: Path,
    make_sim: Any,
    monkeypatch: pytest.MonkeyPatch,
    scans: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = make_sim(latency_mean=0.0, seed=6)
    jobs = _jobs(tmp_path, 8)
    run_dir = tmp_path / "run"
    assert _run(run_dir, jobs, sim) == 0
    rows = [json.loads(line) for line in jobs.read_text().splitlines()]
    rows = [r for r in rows if r["id"] != "job-05"]  # removed
    rows[1] = {"id": "job-01", "prompt": "index test 1, now in the rain"}  # edited
    rows.append({"id": "job-new", "prompt": "index test added"})  # added
    write_jsonl_jobs(jobs, rows)
    capsys.readouterr()

    assert _resume(run_dir) == 0
    out = capsys.readouterr().out
    assert scans == [str(jobs)]  # the stored index was for the old file
    assert "1 edited, 1 removed" in out and "2 jobs to run" in out
    by_prompt = sim.stats.snapshot(timeline=False)["by_prompt"]
    assert by_prompt["index test 1, now in the rain"] == 1
    assert by_prompt["index test added"] == 1
    assert sim.stats["ok"] == 10 and set(by_prompt.values()) == {1}

    # the scan was stored for the edited file: the next resume needs none, and still says
    # what changed since the run started
    defaults = _manifest(run_dir)["settings"]["defaults"]
    assert read_index(run_dir / "state", sha256_file(jobs), defaults) is not None
    _no_scan(monkeypatch)
    assert _resume(run_dir) == 0
    out = capsys.readouterr().out
    assert "nothing to resume: 8 jobs done" in out
    assert "changed since the run started" in out
    assert sim.stats["ok"] == 10


@pytest.mark.parametrize("damage", ["missing", "corrupt", "truncated", "other defaults"])
@pytest.mark.usefixtures("cli_env")
def test_a_missing_or_broken_index_falls_back_to_the_scan_and_is_rewritten(
    tmp_path: Path, make_sim: Any, scans: list[str], damage: str
) -> None:
    run_dir, jobs, sim = _stopped_run(tmp_path, make_sim)
    path = index_path(run_dir / "state")
    if damage == "missing":  # an older run dir, or a crash before it was written
        path.unlink()
    elif damage == "corrupt":
        path.write_bytes(b"PAR1 not a parquet file at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-40])
    else:  # an index built with other defaults gives other fingerprints: not usable
        write_index(run_dir / "state", read_index_anyway(path), sha256_file(jobs), {"n": 2})

    assert _resume(run_dir) == 0
    assert scans == [str(jobs)]
    counts = ok_counts(run_dir)
    assert len(counts) == 12 and set(counts.values()) == {1}
    assert sim.stats["ok"] == 12
    defaults = _manifest(run_dir)["settings"]["defaults"]
    assert read_index(run_dir / "state", sha256_file(jobs), defaults) is not None


def read_index_anyway(path: Path) -> pa.Table:
    return pq.read_table(path).replace_schema_metadata(None)


def test_the_builder_flushes_in_chunks_and_keeps_order(tmp_path: Path) -> None:
    triples = [(f"j{i}", f"{i:064x}", i + 1) for i in range(10)]
    builder = IndexBuilder(chunk=3)
    for t in triples:
        builder.add(*t)
    table = builder.table()
    assert table.column("job_id").num_chunks == 4  # 3 + 3 + 3 + 1
    assert [tuple(r.values()) for r in table.to_pylist()] == triples
    assert builder.table().num_rows == 0  # handed over, not kept

    write_index(tmp_path, table, "a" * 64, {"model": "m", "n": None})
    # the defaults key is canonical: the order of the keys does not matter
    back = read_index(tmp_path, "a" * 64, {"n": None, "model": "m"})
    assert back is not None and back.equals(table)
    assert read_index(tmp_path, "b" * 64, {"model": "m", "n": None}) is None
    assert read_index(tmp_path, "a" * 64, {"model": "m", "n": 1}) is None
    assert not list(tmp_path.glob(".*.tmp"))  # the temp file was renamed into place

    pq.write_table(
        pa.table({"job_id": ["x"]}).replace_schema_metadata(
            pq.read_schema(index_path(tmp_path)).metadata
        ),
        index_path(tmp_path),
    )
    assert read_index(tmp_path, "a" * 64, {"model": "m", "n": None}) is None  # wrong columns


def test_remaining_gives_the_same_answer_for_a_table_and_for_tuples() -> None:
    states = JobStates(
        pa.table(
            {
                "job_id": ["a", "b", "c", "d", "gone"],
                "state": ["done", "done", "failed", "pending", "done"],
                "fingerprint": ["fa", "fb-old", "fc", "fd", "fg"],
                "error_class": [None, None, "content_policy", "quota", None],
                "session": [1, 1, 1, 1, 1],
            }
        ),
        frozenset({"d"}),
    )
    triples = [("new", "fn", 1), ("d", "fd", 2), ("c", "fc", 3), ("b", "fb", 4), ("a", "fa", 5)]
    for retry_failed in (False, True):
        from_tuples = remaining(iter(triples), states, retry_failed)
        from_table = remaining(build_index(triples), states, retry_failed)
        assert from_table == from_tuples
    rest = remaining(build_index(triples), states)
    assert rest.run == {"new", "d", "b"} and rest.edited == ("b",) and rest.added == ("new",)
    assert rest.removed == ("gone",) and rest.skipped_done == 1 and rest.skipped_failed == 1
    assert rest.possibly_billed_twice == {"d"}


def _count_streams(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the pool's second read of the job file (the real read still runs)."""
    import batchgen.session.builder as builder

    calls: list[str] = []
    real = builder.iter_jobs

    def counting(path: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(builder, "iter_jobs", counting)
    return calls


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("keep", [100, 5])
def test_a_short_job_file_is_parsed_once_a_long_one_streamed_again(
    tmp_path: Path, make_sim: Any, monkeypatch: pytest.MonkeyPatch, keep: int
) -> None:
    """Up to KEEP_JOBS jobs, the pool sends the jobs the check parsed; past it, the pool
    streams the file again. Either way every job is sent once, in file order, and logged."""
    import batchgen.session.start as start

    monkeypatch.setattr(start, "KEEP_JOBS", keep)
    streams = _count_streams(monkeypatch)
    sim = make_sim(latency_mean=0.0, seed=2)
    jobs = _jobs(tmp_path, 12)
    run_dir = tmp_path / "run"
    assert _run(run_dir, jobs, sim) == 0
    assert streams == ([] if keep >= 12 else [str(jobs)])
    counts = ok_counts(run_dir)
    assert sorted(counts) == [f"job-{i:02d}" for i in range(12)]
    assert set(counts.values()) == {1}
    assert sim.stats["ok"] == 12
    rows = pq.read_table(run_dir / "log").to_pylist()
    # --concurrency 1: sent in the file's order, whichever way the jobs were read
    assert [r["job_id"] for r in sorted(rows, key=lambda r: r["started_at"])] == sorted(counts)


def test_the_builder_keeps_the_jobs_of_a_short_file_without_edits() -> None:
    from batchgen.jobs.inputs import InputImage
    from batchgen.jobs.model import Job

    def job(i: int, inputs: tuple[InputImage, ...] = ()) -> Job:
        return Job.make(f"j{i}", i + 1, {"prompt": f"p{i}"}, inputs)

    short = IndexBuilder(keep=3)
    for i in range(3):
        short.add_job(job(i))
    assert [j.id for j in short.kept() or []] == ["j0", "j1", "j2"]
    assert short.kept() is None  # handed over
    assert short.table().column("job_id").to_pylist() == ["j0", "j1", "j2"]

    long = IndexBuilder(keep=3)
    for i in range(4):
        long.add_job(job(i))
    assert long.kept() is None
    assert long.table().num_rows == 4  # the index is whole either way

    edit = InputImage("image", "a.png", "path", "/x/a.png", "0" * 64)
    edits = IndexBuilder(keep=3)
    edits.add_job(job(0))
    edits.add_job(job(1, (edit,)))
    assert edits.kept() is None
    assert IndexBuilder().kept() is None  # no keep: nothing kept
