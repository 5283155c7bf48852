"""The README's "Python API" section runs as written: every python block of it, in order,
in one namespace, in a temporary directory holding the demo job file, against the embedded
simulator."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _api_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Python API")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_the_section_has_examples() -> None:
    blocks = _BLOCK.findall(_api_section())
    assert len(blocks) >= 3 and all("batchgen." in b for b in blocks)


def test_the_readme_api_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "jobs").mkdir()
    shutil.copy(ROOT / "jobs" / "demo.jsonl", tmp_path / "jobs" / "demo.jsonl")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    for i, block in enumerate(_BLOCK.findall(_api_section())):
        exec(compile(block, f"README.md Python API block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "stopped: quota" in out and "refused: rpm must be a number > 0" in out
    assert (tmp_path / "runs" / "api-demo" / "run.json").exists()
    assert (
        (tmp_path / "runs" / "api-demo" / "report.html").read_text().startswith("<!DOCTYPE html>")
    )
