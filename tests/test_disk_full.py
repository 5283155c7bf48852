"""A full (or read-only) disk mid-run: the real CLI in a subprocess, ENOSPC injected at the
write seams (``BATCHGEN_FAIL_AT``, batchgen/faultpoints.py), the simulator over real HTTP.

The run stops dispatching, keeps the rows of the answers it received (on disk if space
allows, else their images are adopted by resume), ends with exit 3 and the resume command,
never a traceback; once "space is freed" (the resume runs without the fault), every job has
exactly one ok row and the image files are exactly the ok rows' images.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from tests.runhelpers import (
    MODEL_FLAGS,
    Cli,
    check_log_readable,
    cli_env,
    image_files,
    job_ids_by_prompt,
    log_table,
    logged_images,
    ok_counts,
    run_cli,
    sim_flags,
    write_text_jobs,
)

pytestmark = pytest.mark.timeout(120)


def _env(fail_at: str, errno_name: str | None = None) -> dict[str, str]:
    env = cli_env()
    env["BATCHGEN_FAIL_AT"] = fail_at
    if errno_name:
        env["BATCHGEN_FAIL_ERRNO"] = errno_name
    return env


def _run(tmp_path: Path, sim, jobs: int, env: dict[str, str], grace: str = "2"):
    job_file = write_text_jobs(tmp_path / "jobs.txt", (f"disk job {i:03d}" for i in range(jobs)))
    run_dir = tmp_path / "run"
    done = Cli(
        [
            "run",
            str(job_file),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--concurrency",
            "4",
            "--grace",
            grace,
            "--yes",
            "--quiet",
        ],
        env=env,
    ).finish()
    return run_dir, done


def _stopped_cleanly(done, run_dir: Path) -> None:
    assert done.code == 3, done.output
    assert "Traceback" not in done.output, done.output
    assert "stopped (disk)" in done.stdout, done.output
    assert f"batchgen resume {run_dir}" in done.stdout, done.output


def _resume_finishes_everything(run_dir: Path, sim, jobs: int) -> dict[str, int]:
    # the answers' latency shaped when the first session stopped; the resume only has to
    # finish the rest, once each, so it gets quick answers
    sim.update(latency_mean=0.0)
    resumed = run_cli(["resume", str(run_dir), "--quiet"], env=cli_env())
    assert resumed.code == 0, resumed.output
    assert "Traceback" not in resumed.output
    counts = ok_counts(run_dir)
    assert len(counts) == jobs and set(counts.values()) == {1}, counts
    assert image_files(run_dir) == set(logged_images(run_dir))
    check_log_readable(run_dir)
    return dict(sim.stats.snapshot(timeline=False)["by_prompt"])


@pytest.mark.parametrize("errno_name", ["ENOSPC", "EROFS"])
def test_image_write_fails_then_the_run_stops_keeps_every_row_and_resume_finishes(
    tmp_path: Path, make_sim, errno_name: str
) -> None:
    jobs = 40
    sim = make_sim(latency_mean=0.05, seed=21)
    # the 8th image write and every one after it fail: the disk is full from then on
    run_dir, done = _run(tmp_path, sim, jobs, _env("image:write:8..", errno_name))
    _stopped_cleanly(done, run_dir)
    served = sim.stats.snapshot(timeline=False)["outcomes"]["ok"]
    assert served < jobs  # dispatching stopped
    log = log_table(run_dir, ["job_id", "status", "error_class", "attempt", "image_paths"])
    received = log.filter(pc.greater_equal(log["attempt"], 1))
    # one row per answer received: 7 saved (ok), the rest logged as class disk
    assert received.num_rows == served
    assert pc.sum(pc.equal(received["status"], "ok")).as_py() == 7
    assert pc.all(
        pc.equal(received.filter(pc.equal(received["status"], "error"))["error_class"], "disk")
    ).as_py()
    assert image_files(run_dir) == set(logged_images(run_dir))  # no half answer left
    sessions = json.loads((run_dir / "run.json").read_text())["sessions"]
    assert [s["how"] for s in sessions] == ["stopped_disk"]

    saved_first = set(ok_counts(run_dir))
    by_prompt = _resume_finishes_everything(run_dir, sim, jobs)
    ids = {f"disk job {i:03d}" for i in range(jobs)}
    assert set(by_prompt) == ids
    prompts = dict(
        zip(
            *[
                log_table(run_dir, ["job_id", "prompt"])[c].to_pylist()
                for c in ("job_id", "prompt")
            ],
            strict=True,
        )
    )
    # an image that reached the disk was never paid for again
    assert all(by_prompt[prompts[j]] == 1 for j in saved_first)


def test_log_unwritable_for_good_then_images_are_adopted_not_paid_twice(
    tmp_path: Path, make_sim
) -> None:
    jobs = 200
    sim = make_sim(latency_mean=0.05, seed=22)
    # every log part fails (the disk is full for the log, images still fit): the rows cannot
    # be saved however long the final flush retries
    run_dir, done = _run(tmp_path, sim, jobs, _env("log:write:1.."), grace="0.5")
    _stopped_cleanly(done, run_dir)
    assert "could not be written" in done.stdout and "adopted by resume" in done.stdout
    served = sim.stats.snapshot(timeline=False)["outcomes"]["ok"]
    assert 0 < served < jobs
    assert log_table(run_dir).num_rows == 0
    assert len(image_files(run_dir)) == served  # the images of every answer are on disk
    assert not [p for p in (run_dir / "log").iterdir() if p.name.startswith(".")]

    by_prompt = _resume_finishes_everything(run_dir, sim, jobs)
    # every answer received in the first session was adopted: nothing was sent twice
    assert len(by_prompt) == jobs and set(by_prompt.values()) == {1}
    log = log_table(run_dir, ["cost_source", "status"])
    adopted = pc.sum(pc.equal(log["cost_source"], "recovered")).as_py()
    assert adopted == served


def test_log_write_fails_for_a_while_then_the_final_flush_saves_every_row(
    tmp_path: Path, make_sim
) -> None:
    jobs = 200
    sim = make_sim(latency_mean=0.05, seed=23)
    # two failed flushes, then space is back: the run has stopped, but no row is lost
    run_dir, done = _run(tmp_path, sim, jobs, _env("log:write:1..2"), grace="10")
    _stopped_cleanly(done, run_dir)
    served = sim.stats.snapshot(timeline=False)["outcomes"]["ok"]
    assert 0 < served < jobs
    counts = ok_counts(run_dir)
    assert len(counts) == served and set(counts.values()) == {1}
    assert image_files(run_dir) == set(logged_images(run_dir))
    check_log_readable(run_dir)

    by_prompt = _resume_finishes_everything(run_dir, sim, jobs)
    assert len(by_prompt) == jobs and set(by_prompt.values()) == {1}


def test_disk_full_before_any_request_is_one_line_not_a_traceback(tmp_path: Path, make_sim) -> None:
    sim = make_sim(latency_mean=0.0, seed=24)
    _run_dir, done = _run(tmp_path, sim, 5, _env("file:write:1.."))  # run.json cannot be written
    assert done.code == 3, done.output
    assert "Traceback" not in done.output
    assert "stopped (disk)" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert sim.stats.snapshot(timeline=False)["received"] == 0


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 1 MB tmpfs (root only; skipped where mounting is not possible), and a function
    that "frees space" by growing it to 32 MB."""
    import os
    import subprocess

    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=32m", str(where)], check=True)

    try:
        yield where, grow
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_real_full_disk_stops_with_exit_3_and_resume_finishes_after_space_is_freed(
    tmp_path: Path, make_sim, small_disk
) -> None:
    disk, grow = small_disk
    jobs = 60  # ~30 KB per image: the 1 MB disk fills about half way
    sim = make_sim(latency_mean=0.0, seed=25, tiny=False)
    job_file = write_text_jobs(tmp_path / "jobs.txt", (f"full disk {i:03d}" for i in range(jobs)))
    run_dir = disk / "run"
    done = run_cli(
        [
            "run",
            str(job_file),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--concurrency",
            "4",
            "--grace",
            "1",
            "--yes",
            "--quiet",
        ],
        env=cli_env(),
    )
    _stopped_cleanly(done, run_dir)
    assert sim.stats.snapshot(timeline=False)["outcomes"]["ok"] < jobs
    saved_first = {p.removeprefix("images/") for p in image_files(run_dir)}
    assert saved_first  # some images made it before the disk filled

    grow()  # space is freed
    by_prompt = _resume_finishes_everything(run_dir, sim, jobs)
    assert len(by_prompt) == jobs
    # a job whose image was on disk after the first session was never sent again
    prompts = {job_id: prompt for prompt, job_id in job_ids_by_prompt(run_dir).items()}
    for name in saved_first:
        assert by_prompt[prompts[name.rsplit("_", 1)[0]]] == 1, name
