"""A damaged run directory: a truncated Parquet file in log/, a hand-edited run.json.

Through the real CLI against the simulator: `report` and `resume` never show a traceback; a
damaged log file is quarantined (its rows are unknown, its jobs run again, their images on
disk are adopted, never paid twice); a bad run.json stops with a message naming the key and
exit 2, never "every job succeeded"."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.runhelpers import (
    MODEL_FLAGS,
    check_log_readable,
    cli_env,
    image_files,
    logged_images,
    ok_counts,
    run_cli,
    sim_flags,
    write_text_jobs,
)

pytestmark = pytest.mark.timeout(120)


def _run(tmp_path: Path, sim, prompts: list[str], *extra: str):
    jobs = write_text_jobs(tmp_path / "jobs.txt", prompts)
    run_dir = tmp_path / "run"
    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--concurrency",
            "2",
            "--yes",
            "--quiet",
            *extra,
        ],
        env=cli_env(),
    )
    return jobs, run_dir, done


def _session_files(run_dir: Path, session: int) -> list[Path]:
    return sorted((run_dir / "log").glob(f"*-{session:05d}-*.parquet"))


def test_truncated_log_file_is_quarantined_and_its_jobs_adopted_not_paid_twice(
    tmp_path: Path, make_sim
) -> None:
    sim = make_sim(latency_mean=0.0, seed=31)
    first = [f"first session {i}" for i in range(8)]
    jobs, run_dir, done = _run(tmp_path, sim, first)
    assert done.code == 0, done.output
    # a second session (8 jobs added to the file) so one file is damaged, the other intact
    write_text_jobs(jobs, [*first, *(f"second session {i}" for i in range(8))])
    assert run_cli(["resume", str(run_dir), "--quiet"], env=cli_env()).code == 0
    (damaged,) = _session_files(run_dir, 1)
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])

    report = run_cli(
        ["report", str(run_dir), "--no-image-checks", "--format", "json"], env=cli_env()
    )
    assert report.code == 0, report.output
    assert "Traceback" not in report.output
    notes = [line for line in report.stderr.splitlines() if "damaged" in line]
    assert len(notes) == 1 and damaged.name in notes[0], report.stderr
    assert len(report.stderr.strip().splitlines()) == 1, report.stderr
    # the damaged file's rows are unknown: its jobs are not counted as succeeded
    assert json.loads(report.stdout)["jobs_succeeded"] == 8

    sent_before = sim.stats.snapshot(timeline=False)["received"]
    resumed = run_cli(["resume", str(run_dir), "--quiet"], env=cli_env())
    assert resumed.code == 0, resumed.output
    assert "Traceback" not in resumed.output
    assert "_quarantine" in resumed.stderr and damaged.name in resumed.stderr
    assert "adopted 8 jobs" in resumed.stdout
    assert sim.stats.snapshot(timeline=False)["received"] == sent_before  # nothing re-sent
    assert (run_dir / "log" / "_quarantine" / damaged.name).exists()
    counts = ok_counts(run_dir)
    assert len(counts) == 16 and set(counts.values()) == {1}
    assert image_files(run_dir) == set(logged_images(run_dir))
    check_log_readable(run_dir)  # pyarrow, pandas-style dataset and DuckDB skip the quarantine
    again = run_cli(["report", str(run_dir), "--no-image-checks"], env=cli_env())
    assert again.code == 0 and "damaged" not in again.stderr, again.output


def _edit(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        doc = doc[key]
    if value is KeyError:
        del doc[last]
    else:
        doc[last] = value


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory, make_module_sim) -> tuple[Any, Path]:
    """A run stopped by its budget, made once for the module: jobs are pending, so a resume
    would send requests (the simulator is shared too, to see that none is sent)."""
    sim = make_module_sim(latency_mean=0.0, seed=32)
    folder = tmp_path_factory.mktemp("stopped")
    _, run_dir, done = _run(
        folder, sim, [f"manifest job {i}" for i in range(6)], "--max-cost", "0.03"
    )
    assert done.code == 3, done.output
    return sim, run_dir


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (("settings.pool.concurrency", 0), "settings.pool.concurrency"),
        (("settings.pool.rpm", -5), "settings.pool.rpm"),
        (("settings.pool.timeout", "fast"), "settings.pool.timeout"),
        (("run_id", KeyError), "run_id"),
        (("jobs", "ten"), "jobs"),
        (("sessions", {"1": "x"}), "sessions"),
        (("settings", None), "settings"),
        (("settings.max_cost", -1), "settings.max_cost"),
        ("not json", "not valid JSON"),
        ("[1, 2]", "not an object"),
    ],
    ids=[
        "concurrency-0",
        "negative-rpm",
        "timeout-type",
        "no-run_id",
        "jobs-type",
        "sessions-type",
        "settings-null",
        "negative-max-cost",
        "invalid-json",
        "json-list",
    ],
)
def test_bad_run_json_is_named_and_refused_with_exit_2(
    tmp_path: Path, stopped_run: tuple[Any, Path], edit: Any, named: str
) -> None:
    sim, stopped = stopped_run
    run_dir = tmp_path / "run"
    shutil.copytree(stopped, run_dir)  # each edit on its own copy of the one stopped run
    manifest = run_dir / "run.json"
    if isinstance(edit, str):
        manifest.write_text(edit)
    else:
        doc = json.loads(manifest.read_text())
        _edit(doc, *edit)
        manifest.write_text(json.dumps(doc))
    saved = manifest.read_bytes()
    sent_before = sim.stats.snapshot(timeline=False)["received"]
    commands = [
        ["resume", str(run_dir), "--max-cost", "10"],
        ["jobs", str(run_dir), "--status", "pending"],
    ]
    if named != "run_id":  # the report needs no run id (it reads manifests of other tools)
        commands.append(["report", str(run_dir)])
    for command in commands:
        result = run_cli(command, env=cli_env())
        assert result.code == 2, (command, result.output)
        assert "Traceback" not in result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0] and "run.json" in lines[0], result.stderr
        assert "every job succeeded" not in result.stdout
    assert sim.stats.snapshot(timeline=False)["received"] == sent_before  # nothing sent
    assert manifest.read_bytes() == saved  # left as found, for the user to fix
    shutil.rmtree(run_dir)
