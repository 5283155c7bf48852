"""`batchgen runs FOLDER`: every run directory with its state, counts and cost, read from
run.json and the log; a run whose lock a live batchgen holds reads ``running``."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from batchgen.cli.main import main
from batchgen.runlog.rundir import RunDir
from batchgen.testing.synthetic import table_from_rows, write_run

T0 = 1_800_000_000.0


def _run(folder: Path, name: str, ok: int, failed: int, jobs: int, how: str | None) -> Path:
    rows = [
        {
            "run_id": name,
            "session": 1,
            "job_id": f"j{i}",
            "attempt": 1,
            "status": "ok",
            "final": True,
            "prompt": "p",
            "model": "gpt-image-1-mini",
            "image_paths": [],
            "image_count": 1,
            "finished_at": T0 + i,
            "cost_usd": 0.25,
        }
        for i in range(ok)
    ]
    rows += [
        {
            "run_id": name,
            "session": 1,
            "job_id": f"f{i}",
            "attempt": 1,
            "status": "error",
            "final": True,
            "error_class": "content_policy",
            "prompt": "p",
            "finished_at": T0 + 50 + i,
        }
        for i in range(failed)
    ]
    sessions = [{"session": 1, "started_at": T0, "ended_at": T0 + 60, "how": how}]
    return write_run(folder / name, table_from_rows(rows), jobs=jobs, sessions=sessions)


def _runs(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["runs", *argv])
    return code, out.getvalue(), err.getvalue()


def test_runs_lists_state_counts_and_cost(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    _run(folder, "a", ok=4, failed=1, jobs=5, how="failed_jobs")
    b = _run(folder, "b", ok=2, failed=0, jobs=6, how=None)
    (folder / "not-a-run").mkdir()
    code, out, _ = _runs(str(folder), "--format", "json")
    assert code == 0
    by_name = {r["name"]: r for r in json.loads(out)}
    assert set(by_name) == {"a", "b"}
    a = by_name["a"]
    assert (a["state"], a["succeeded"], a["failed"], a["pending"]) == ("failed jobs", 4, 1, 0)
    assert a["cost_usd"] == 1.0
    assert by_name["b"]["pending"] == 4 and by_name["b"]["state"].startswith("no session ended")
    with RunDir(b).lock():  # a live batchgen holds it
        code, out, _ = _runs(str(folder))
    assert code == 0
    assert "running" in out and "failed jobs" in out and "$1.00" in out


def test_runs_on_a_missing_folder(tmp_path: Path) -> None:
    code, _, err = _runs(str(tmp_path / "nope"))
    assert code == 2 and "is not a folder" in err
    code, out, _ = _runs(str(tmp_path))
    assert code == 0 and "no run directories" in out
