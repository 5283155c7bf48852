"""A job file column or field that is no API field and no near miss (a CSV column ``notes``)
is sent to the API as is, and OpenAI answers 400 "Unknown parameter" for every job that has
it. The reader worked the warning out, but nothing printed it: `plan` (text and --format json)
and `run` (with the quote, before anything is sent) now say it once per field, naming its
first line and how many lines have it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchgen.cli.main import main


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-FIELDS-0000")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def _notes(tmp_path: Path) -> Path:
    # line 1 the header; line 3's note is empty (not sent), lines 2, 4 and 5 carry one
    path = tmp_path / "jobs.csv"
    path.write_text(
        "prompt,notes,size\n"
        "a red fox,first try,1024x1024\n"
        "a blue fox,,1024x1024\n"
        "a green fox,again,1024x1024\n"
        "a grey fox,last,1024x1024\n",
        encoding="utf-8",
    )
    return path


def _said(text: str) -> list[str]:
    return [line for line in text.splitlines() if '"notes"' in line]


def test_plan_says_a_field_the_api_does_not_know_once_with_its_first_line_and_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = _notes(tmp_path)
    assert main(["plan", str(jobs)]) == 0
    said = _said(capsys.readouterr().out)
    assert len(said) == 1, said
    assert said[0].startswith(f'warning: {jobs}:2: "notes" (on 3 lines')
    assert "not a field of the OpenAI images API" in said[0] and "Unknown parameter" in said[0]

    assert main(["plan", str(jobs), "--format", "json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert [w for w in warnings if '"notes"' in w] == [w.removeprefix("warning: ") for w in said]


def test_run_says_it_with_the_quote_before_sending_even_quiet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = _notes(tmp_path)
    run_dir = tmp_path / "run"
    argv = ["run", str(jobs), "--provider", "sim", "--sim-tiny", "--run-dir", str(run_dir)]
    code = main([*argv, "--yes", "--ledger", "off", "--quiet"])
    out = capsys.readouterr().out
    said = _said(out)
    assert len(said) == 1, out
    assert said[0].startswith(f'warning: {jobs}:2: "notes" (on 3 lines')
    # printed before the session's first line: the run dir, then what was sent
    assert out.index(said[0]) < out.index("run dir:")
    # the simulator answers as OpenAI does: the three jobs with a note failed (400)
    assert code == 1


def test_a_file_of_api_fields_only_says_nothing_of_the_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("prompt,size\na red fox,1024x1024\n", encoding="utf-8")
    assert main(["plan", str(jobs), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
