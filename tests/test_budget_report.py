"""`batchgen report` names the budget that stopped the run: a run the monthly budget stopped
was told to "raise --max-cost" (the taxonomy's remedy, which knew only --max-cost), though it
had no --max-cost. Each run is real, live against the simulator; the report reads run.json's
record of the stop (session/execute.py: stopped_by, stop_message)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batchgen.cli.main import main
from batchgen.reports import build_report
from tests.runhelpers import SECRET_KEY, sim_flags, write_text_jobs

pytestmark = pytest.mark.timeout(120)

# quality auto is quoted as medium and held as high: the run starts, the month refuses later
AUTO = ("--model", "gpt-image-1-mini", "--quality", "auto", "--size", "auto")


def _run(tmp_path: Path, sim: Any, monkeypatch: Any, *flags: str) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"a lamp {i}" for i in range(20)))
    run_dir = tmp_path / "run"
    args = ["run", str(jobs), "--run-dir", str(run_dir), *AUTO, *sim_flags(sim)]
    code = main([*args, "--yes", "--quiet", "--concurrency", "1", *flags])
    assert code == 3  # stopped by the budget, jobs pending
    return run_dir


def _budget_advice(run_dir: Path) -> Any:
    report = build_report(run_dir, image_checks=False).run
    [advice] = [r for r in report.recommendations if r.kind == "stop_budget"]
    return advice


def test_a_run_the_monthly_budget_stopped_is_told_to_raise_the_monthly_budget(
    tmp_path: Path, make_sim: Any, monkeypatch: Any
) -> None:
    sim = make_sim(api_key=SECRET_KEY)
    ledger = ["--ledger", str(tmp_path / "ledger.sqlite")]
    run_dir = _run(tmp_path, sim, monkeypatch, *ledger, "--monthly-budget", "0.2")
    summary = json.loads((run_dir / "run.json").read_text())["sessions"][-1]["summary"]
    assert summary["stopped_by"] == "--monthly-budget", summary
    advice = _budget_advice(run_dir)
    assert advice.evidence["stopped_by"] == "--monthly-budget"
    assert "--max-cost" not in advice.message, advice.message
    assert "raise --monthly-budget to at least $" in advice.message, advice.message
    assert f"batchgen resume {run_dir}" in advice.message and "RUN_DIR" not in advice.message


def test_a_run_max_cost_stopped_is_told_to_raise_max_cost_with_a_figure(
    tmp_path: Path, make_sim: Any, monkeypatch: Any
) -> None:
    sim = make_sim(api_key=SECRET_KEY)
    run_dir = _run(tmp_path, sim, monkeypatch, "--ledger", "off", "--max-cost", "0.1")
    advice = _budget_advice(run_dir)
    assert advice.evidence["stopped_by"] == "--max-cost"
    assert f"stopped by --max-cost: batchgen resume {run_dir} --max-cost " in advice.message
    assert "HIGHER" not in advice.message  # the figure the ending suggested
    assert "monthly" not in advice.message


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"project_budget": 0.5}, "--project-budget"),
        ({"max_cost": 0.5}, "--max-cost"),
        ({"max_cost": 0.5, "monthly_budget": 2.0}, None),  # which one is not known
    ],
)
def test_a_run_recorded_before_names_the_one_budget_its_settings_give(
    tmp_path: Path, settings: dict[str, float], named: str | None
) -> None:
    """A run.json without the stop's record (an older run): the budget is the one its settings
    name; with two, the class's remedy names them all."""
    from batchgen.testing.synthetic import table_from_rows, write_run

    row = {"run_id": "r", "session": 1, "attempt": 0, "status": "skipped", "final": False,
           "error_class": "budget", "prompt": "a lamp", "finished_at": 1.7e9,
           "job_id": "a"}  # fmt: skip
    run_dir = write_run(tmp_path / "run", table_from_rows([row]), jobs=1, settings=settings)
    advice = _budget_advice(run_dir)
    assert advice.evidence.get("stopped_by") == named
    if named is None:
        assert "--max-cost" in advice.message and "--monthly-budget" in advice.message
    else:
        assert advice.message.startswith(f"stopped by {named}: ")
    assert f"batchgen resume {run_dir}" in advice.message and "RUN_DIR" not in advice.message
