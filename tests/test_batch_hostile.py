"""``--via batch`` against a hostile provider (issue 22 #3, #4): malformed output lines and
Batch objects, a line too long to keep, and batches whose state cannot be known (no files
listing, an output file that answers 404). The real CLI over HTTP against the simulator's
Batch API; its ``submitted``/``billed`` counters are the ground truth for "paid once"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from batchgen import faultpoints
from batchgen.batch.lines import MAX_LINE_ENV, LineSplitter, LongLine
from tests.runhelpers import (
    check_log_readable,
    cli_env,
    image_files,
    job_ids_by_prompt,
    log_table,
    logged_images,
    ok_counts,
    run_cli,
    write_text_jobs,
)
from tests.test_batch import POLL, _resume, _run, batch_stats


def _resume_loud(run_dir: Path, *extra: str) -> list[str]:
    return ["resume", str(run_dir), *POLL, "--yes", *extra]


pytestmark = pytest.mark.timeout(120)


def _no_traceback(out: str) -> None:
    assert "Traceback" not in out and "Error:" not in out.replace("error:", ""), out


def test_malformed_lines_save_their_images_once_and_nothing_is_resubmitted(
    tmp_path: Path, make_sim: Any
) -> None:
    sim = make_sim(batch_seconds=0.3, batch_faults="counts_str=1")
    modes = ["status_abc", "status_huge", "status_null", "revised_dict", "error_then_ok"]
    prompts = [f"[batch:{m}] a misty fjord {i}" for i, m in enumerate(modes)]
    prompts += [f"a misty fjord plain {i}" for i in range(5)]
    jobs = write_text_jobs(tmp_path / "jobs.txt", prompts)
    run_dir = tmp_path / "run"
    done = run_cli(_run(jobs, run_dir, sim, "--quiet"), env=cli_env())
    assert done.code == 0, done.output
    _no_traceback(done.output)
    counts = ok_counts(run_dir)
    assert len(counts) == 10 and set(counts.values()) == {1}
    stats = batch_stats(sim)
    assert stats["batches_created"] == 1 and set(stats["submitted"].values()) == {1}
    assert set(stats["billed"].values()) == {1} and len(stats["billed"]) == 10
    assert image_files(run_dir) == set(logged_images(run_dir)) and len(image_files(run_dir)) == 10
    by_prompt = job_ids_by_prompt(run_dir)
    log = log_table(run_dir, ["job_id", "status", "http_status", "revised_prompt"])
    rows = {r["job_id"]: r for r in log.to_pylist() if r["status"] == "ok"}
    assert rows[by_prompt[prompts[3]]]["revised_prompt"] is None  # a dict is not a prompt
    assert rows[by_prompt[prompts[0]]]["http_status"] is None  # "abc" is not a status
    assert rows[by_prompt[prompts[1]]]["http_status"] is None  # nor is 10**30
    state = json.loads((run_dir / "state" / "batches.json").read_text())
    assert state["parts"][0]["counts"] == {"total": 10, "completed": 10, "failed": 0}
    check_log_readable(run_dir)
    again = run_cli(_resume(run_dir), env=cli_env())
    assert again.code == 0, again.output
    assert batch_stats(sim)["batches_created"] == 1  # nothing left to send


def test_failed_batch_with_errors_as_a_list_and_an_expired_one_are_not_billed_twice(
    tmp_path: Path, make_sim: Any
) -> None:
    sim = make_sim(batch_seconds=0.3, batch_faults="errors_list=1,expire=2")
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"a dry wadi {i:02d}" for i in range(40)))
    run_dir = tmp_path / "run"
    first = run_cli(
        _run(jobs, run_dir, sim, "--batch-max-requests", "20", "--quiet"), env=cli_env()
    )
    assert first.code == 3, first.output
    _no_traceback(first.output)
    resumed = run_cli(_resume(run_dir), env=cli_env())
    assert resumed.code == 0, resumed.output
    assert len(ok_counts(run_dir)) == 40
    assert set(batch_stats(sim)["billed"].values()) == {1}
    report = run_cli(["report", str(run_dir), "--format", "json"], env=cli_env())
    assert report.code == 0, report.output
    doc = json.loads(report.stdout)
    # 30 lines never ran (a failed batch, the unrun half of an expired one): not "billed twice"
    assert doc["possibly_billed_twice"] == 0, doc["possibly_billed_twice"]


def test_a_line_over_the_cap_is_logged_not_kept_and_collection_goes_on(
    tmp_path: Path, make_sim: Any
) -> None:
    sim = make_sim(batch_seconds=0.2)
    prompts = ["[batch:pad=300] a long line", *(f"a short line {i}" for i in range(4))]
    jobs = write_text_jobs(tmp_path / "jobs.txt", prompts)
    run_dir = tmp_path / "run"
    env = {**cli_env(), MAX_LINE_ENV: "200000"}
    first = run_cli(_run(jobs, run_dir, sim, "--quiet"), env=env)
    assert first.code == 3, first.output
    _no_traceback(first.output)
    assert len(ok_counts(run_dir)) == 4
    log = log_table(run_dir, ["job_id", "status", "error_code", "error_message"])
    bad = log.filter(pc.equal(log["status"], "error")).to_pylist()
    assert [r["job_id"] for r in bad] == [job_ids_by_prompt(run_dir)[prompts[0]]]
    assert bad[0]["error_code"] == "line_too_long" and MAX_LINE_ENV in bad[0]["error_message"]
    resumed = run_cli(_resume(run_dir), env=cli_env())  # the default cap: kept
    assert resumed.code == 0, resumed.output
    assert len(ok_counts(run_dir)) == 5


def test_line_splitter_is_linear_and_caps_a_line() -> None:
    """A line spread over many chunks is scanned once per chunk (the old splitter rescanned
    the whole buffer per chunk: quadratic); a line over the cap comes out as a LongLine."""
    scanned = [0]

    class Chunk(bytes):
        def find(self, *args: Any) -> int:  # type: ignore[override]
            start = args[1] if len(args) > 1 else 0
            found = super().find(*args)
            scanned[0] += (found if found >= 0 else len(self)) - start + 1
            return found

    chunks = [Chunk(b'{"custom_id":"j1","x":"' + b"a" * 1000)]
    chunks += [Chunk(b"a" * 1024) for _ in range(2000)]
    chunks += [Chunk(b'"}\nshort\n')]
    total = sum(len(c) for c in chunks)
    splitter = LineSplitter(cap=10 << 20)
    out = [line for c in chunks for line in splitter.feed(c)]
    assert [len(x) for x in out] == [total - len(b"\nshort\n"), 5]
    assert scanned[0] <= total + 3 * len(chunks)
    capped = LineSplitter(cap=100_000)
    got = [line for c in chunks for line in capped.feed(c)]
    assert isinstance(got[0], LongLine) and got[0].custom_id == "j1"
    assert got[0].size == total - len(b"\nshort\n") and bytes(got[1]) == b"short"


@pytest.mark.parametrize(
    ("crash_at", "uploads"),
    [("batch:after_intent:1", 1), ("batch:after_upload:1", 2)],
)
def test_a_crash_mid_submit_on_a_provider_without_a_files_listing_resumes(
    tmp_path: Path, make_sim: Any, crash_at: str, uploads: int
) -> None:
    sim = make_sim(batch_seconds=0.2, batch_faults="no_file_list=1")
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"a salt flat {i:02d}" for i in range(20)))
    run_dir = tmp_path / "run"
    crashed = run_cli(_run(jobs, run_dir, sim, "--quiet"), env=cli_env(crash_at=crash_at))
    assert crashed.code == faultpoints.EXIT_CODE, crashed.output
    resumed = run_cli(_resume_loud(run_dir), env=cli_env())
    assert resumed.code == 0, resumed.output
    _no_traceback(resumed.output)
    stats = batch_stats(sim)
    assert stats["files_uploaded"] == uploads and stats["batches_created"] == 1, stats
    assert len(ok_counts(run_dir)) == 20 and set(stats["billed"].values()) == {1}
    if uploads == 2:
        assert "cannot list its files" in resumed.output


def test_a_crash_after_create_on_a_provider_without_listings_is_accounted_for(
    tmp_path: Path, make_sim: Any
) -> None:
    sim = make_sim(batch_seconds=0.2, batch_faults="no_file_list=1,no_batch_list=1")
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"a pine ridge {i:02d}" for i in range(10)))
    run_dir = tmp_path / "run"
    crashed = run_cli(
        _run(jobs, run_dir, sim, "--quiet"), env=cli_env(crash_at="batch:after_create:1")
    )
    assert crashed.code == faultpoints.EXIT_CODE, crashed.output
    resumed = run_cli(_resume_loud(run_dir), env=cli_env())
    assert resumed.code == 0, resumed.output
    assert "billed twice" in resumed.output
    assert len(ok_counts(run_dir)) == 10
    # the crash's batch could not be found: sent again, so billed twice — and said so
    assert batch_stats(sim)["batches_created"] == 2
    report = run_cli(["report", str(run_dir), "--format", "json"], env=cli_env())
    assert json.loads(report.stdout)["possibly_billed_twice"] == 10


@pytest.mark.parametrize("via", ["batch", "live"])
def test_an_output_file_that_answers_404_leaves_its_jobs_pending_and_resume_finishes(
    tmp_path: Path, make_sim: Any, via: str
) -> None:
    sim = make_sim(batch_seconds=0.2, batch_faults="output_404=1")
    prompts = [f"a tidal flat {i:02d}" for i in range(12)]
    prompts[3] = "[sim:content_policy] a tidal flat 03"  # in the error file, still readable
    jobs = write_text_jobs(tmp_path / "jobs.txt", prompts)
    run_dir = tmp_path / "run"
    first = run_cli(_run(jobs, run_dir, sim), env=cli_env())
    assert first.code == 3, first.output
    _no_traceback(first.output)
    assert "may have been billed" in first.output
    collected = run_cli(["collect", str(run_dir), "--quiet"], env=cli_env())
    assert collected.code in (0, 3), collected.output
    _no_traceback(collected.output)
    resumed = run_cli(_resume(run_dir, "--via", via), env=cli_env())
    assert resumed.code in (0, 1), resumed.output  # 1: the content-policy job failed for good
    counts = ok_counts(run_dir)
    assert len(counts) == 11 and set(counts.values()) == {1}
    report = run_cli(["report", str(run_dir), "--format", "json"], env=cli_env())
    assert json.loads(report.stdout)["possibly_billed_twice"] == 11
