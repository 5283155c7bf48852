"""`batchgen resume` and `batchgen jobs`: stops that leave jobs pending (auth, quota), an edited
job file, a finished run, and the export of ok / failed / pending jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchgen.jobs import iter_jobs, validate_file
from tests.runhelpers import (
    MODEL_FLAGS,
    SECRET_KEY,
    check_log_readable,
    cli_env,
    files_holding_secret,
    image_files,
    logged_images,
    ok_counts,
    run_cli,
    secret_in_log,
    sim_flags,
    write_jsonl_jobs,
    write_text_jobs,
)

pytestmark = pytest.mark.timeout(90)

GOOD_KEY = "sk-test-GOOD987654321"


def _start(tmp_path: Path, sim, jobs: Path, *extra: str, key: str = SECRET_KEY):
    run_dir = tmp_path / "run"
    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--yes",
            "--quiet",
            *extra,
        ],
        env=cli_env(key),
    )
    return run_dir, done


def _exported(run_dir: Path, status: str, out: Path) -> list[str]:
    done = run_cli(["jobs", str(run_dir), "--status", status, "-o", str(out)], env=cli_env())
    assert done.code == 0, done.output
    n = len(out.read_text().splitlines())
    assert f"{n} {status} job{'' if n == 1 else 's'} written to {out}" in done.stderr
    return [json.loads(line)["id"] for line in out.read_text().splitlines()]


@pytest.mark.parametrize("stop", ["auth", "quota"])
def test_a_stop_mid_run_leaves_the_rest_pending_and_resume_with_the_fix_finishes_it(
    tmp_path: Path, make_sim, stop: str
) -> None:
    # the simulator accepts only the first key; after 8 successes every request fails with
    # the stop class. The fix: the simulator takes only a new key, given to resume by env
    sim = make_sim(latency_mean=0.01, fail_after={stop: 8}, api_key=SECRET_KEY, seed=11)
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"{stop} job {i:02d}" for i in range(30)))
    run_dir, first = _start(tmp_path, sim, jobs, "--concurrency", "3")
    assert first.code == 3, first.output
    assert f"stopped ({stop})" in first.stdout
    assert f"batchgen resume {run_dir}" in first.stdout
    ok_first = set(ok_counts(run_dir))
    assert len(ok_first) == 8  # the simulator's fail_after is exact under concurrency
    pending = _exported(run_dir, "pending", tmp_path / "pending.jsonl")
    assert len(pending) == 22 and not set(pending) & ok_first
    assert _exported(run_dir, "failed", tmp_path / "failed.jsonl") == []
    how = [s["how"] for s in json.loads((run_dir / "run.json").read_text())["sessions"]]
    assert how == [f"stopped_{stop}"]

    # the fix: a new key (auth) / more credit (quota) — the fault goes away either way
    sim.update(fail_after={}, api_key=GOOD_KEY)
    resumed = run_cli(["resume", str(run_dir), "--yes", "--quiet"], env=cli_env(GOOD_KEY))
    assert resumed.code == 0, resumed.output
    counts = ok_counts(run_dir)
    assert len(counts) == 30 and set(counts.values()) == {1}
    assert sim.stats["ok"] == 30  # no job was paid for twice
    assert image_files(run_dir) == set(logged_images(run_dir))
    check_log_readable(run_dir)
    for key in (SECRET_KEY, GOOD_KEY):
        assert files_holding_secret(run_dir, key) == []
        assert not secret_in_log(run_dir, key)
        assert key not in first.output + resumed.output


def test_resume_after_editing_the_job_file_runs_exactly_the_added_and_edited_jobs(
    tmp_path: Path, make_sim
) -> None:
    sim = make_sim(latency_mean=0.01, seed=12)
    original = [{"id": f"job-{i}", "prompt": f"edit test {i}"} for i in range(10)]
    jobs = write_jsonl_jobs(tmp_path / "jobs.jsonl", original)
    run_dir, first = _start(tmp_path, sim, jobs, "--concurrency", "4")
    assert first.code == 0, first.output
    assert sim.stats["ok"] == 10

    edited = [j for j in original if j["id"] != "job-7"]  # removed
    edited[2] = {"id": "job-2", "prompt": "edit test 2, now at dusk"}  # edited
    edited.append({"id": "job-new", "prompt": "edit test added"})  # added
    write_jsonl_jobs(jobs, edited)
    resumed = run_cli(["resume", str(run_dir), "--yes", "--quiet"], env=cli_env())
    assert resumed.code == 0, resumed.output
    out = resumed.stdout
    assert "changed since the run started" in out
    assert "1 edited, 1 removed" in out and "edited: job-2" in out and "removed: job-7" in out
    assert "2 jobs to run" in out

    by_prompt = sim.stats.snapshot(timeline=False)["by_prompt"]
    assert by_prompt["edit test 2, now at dusk"] == 1
    assert by_prompt["edit test added"] == 1
    assert sim.stats["ok"] == 12  # the two, and nothing else again
    assert all(v == 1 for v in by_prompt.values())
    counts = ok_counts(run_dir)
    assert counts["job-2"] == 2  # its old result stays in the log; the new one is its latest
    assert counts["job-new"] == 1
    # the export follows the edited file: the removed job is not a job any more
    ok_ids = _exported(run_dir, "ok", tmp_path / "ok.jsonl")
    assert sorted(ok_ids) == sorted(j["id"] for j in edited)

    again = run_cli(["resume", str(run_dir), "--yes", "--quiet"], env=cli_env())
    assert again.code == 0, again.output
    assert "nothing to resume: 10 jobs done" in again.stdout
    assert sim.stats["ok"] == 12


def test_resume_of_a_finished_run_says_so_exits_0_and_sends_nothing(
    tmp_path: Path, make_sim
) -> None:
    sim = make_sim(seed=13)
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"done job {i}" for i in range(5)))
    run_dir, first = _start(tmp_path, sim, jobs)
    assert first.code == 0, first.output
    sessions_before = json.loads((run_dir / "run.json").read_text())["sessions"]
    resumed = run_cli(["resume", str(run_dir), "--yes", "--quiet"], env=cli_env())
    assert resumed.code == 0, resumed.output
    assert "nothing to resume: 5 jobs done, 0 failed for good" in resumed.stdout
    assert sim.stats.received == 5
    assert json.loads((run_dir / "run.json").read_text())["sessions"] == sessions_before


def test_jobs_export_splits_ok_failed_pending_into_valid_job_files(
    tmp_path: Path, make_sim
) -> None:
    # one worker, so the order is the file's: jobs 0-5 ok but the two refused ones, then
    # the auth fault after the 4th success stops the run at job 6 and leaves 6-9 pending
    sim = make_sim(fail_after={"auth": 4}, seed=14)
    prompts = [f"export job {i}" for i in range(10)]
    prompts[1] += " [sim:content_policy]"
    prompts[3] += " [sim:content_policy]"
    jobs = write_text_jobs(tmp_path / "jobs.txt", prompts)
    run_dir, first = _start(tmp_path, sim, jobs, "--concurrency", "1")
    assert first.code == 3, first.output
    ids = [
        job.id
        for job in iter_jobs(
            jobs, json.loads((run_dir / "run.json").read_text())["settings"]["defaults"]
        )
    ]

    exported = {
        status: _exported(run_dir, status, tmp_path / f"{status}.jsonl")
        for status in ("ok", "failed", "pending")
    }
    assert exported["ok"] == [ids[i] for i in (0, 2, 4, 5)]
    assert exported["failed"] == [ids[1], ids[3]]
    assert exported["pending"] == [ids[i] for i in (6, 7, 8, 9)]
    for status, want in exported.items():
        path = tmp_path / f"{status}.jsonl"
        # each export is itself a job file: valid, same ids, same request bodies
        assert validate_file(path, {}).ok
        again = list(iter_jobs(path, {}))
        assert [j.id for j in again] == want
        by_id = {
            j.id: j
            for j in iter_jobs(
                jobs, json.loads((run_dir / "run.json").read_text())["settings"]["defaults"]
            )
        }
        assert all(j.fingerprint == by_id[j.id].fingerprint for j in again)

    # -o into a missing folder makes it; where no file can be, one line and exit 2 (it was a
    # FileNotFoundError traceback)
    assert _exported(run_dir, "failed", tmp_path / "new" / "failed.jsonl") == [ids[1], ids[3]]
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "failed.jsonl"
    refused = run_cli(
        ["jobs", str(run_dir), "--status", "failed", "-o", str(target)], env=cli_env()
    )
    assert refused.code == 2 and "Traceback" not in refused.output, refused.output
    assert refused.stderr.startswith(f"batchgen jobs: cannot write {target}"), refused.stderr
    # a file given as the run directory: one line, not a NotADirectoryError traceback
    not_a_run = run_cli(["jobs", str(tmp_path / "a-file"), "--status", "ok"], env=cli_env())
    assert not_a_run.code == 2 and "Traceback" not in not_a_run.output, not_a_run.output
    assert "is a file, not a run directory" in not_a_run.stderr

    # the pending export re-drives elsewhere: a new run of it sends exactly those jobs
    sim.update(fail_after={})
    other = tmp_path / "other"
    redo = run_cli(
        [
            "run",
            str(tmp_path / "pending.jsonl"),
            "--run-dir",
            str(other),
            *sim_flags(sim),
            "--yes",
            "--quiet",
        ],
        env=cli_env(),
    )
    assert redo.code == 0, redo.output
    assert sorted(ok_counts(other)) == sorted(exported["pending"])
