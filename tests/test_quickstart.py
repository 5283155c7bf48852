"""The README's Quick start and every example job file pass `plan` as written (issue 23,
acceptance 3): a new user's first command must not exit 2 on the project's own examples."""

from __future__ import annotations

import io
import os
import re
import shlex
from pathlib import Path

import pytest

from batchgen.cli.main import build_parser
from batchgen.config import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.name for p in (ROOT / "jobs").iterdir() if p.is_file())


def quick_start_commands() -> list[list[str]]:
    """The `batchgen plan|run ...` lines of the README's Quick start block, as argv."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    out = []
    for line in block.splitlines():
        command = line.split("#", 1)[0].strip()
        if command.startswith("batchgen "):
            argv = shlex.split(command)[1:]
            if argv[0] in ("plan", "run"):
                out.append(argv)
    return out


def plan(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.chdir(ROOT)  # the README's paths are relative to the clone
    for name in [k for k in os.environ if k.startswith(("OPENAI_", "BATCHGEN_"))]:
        monkeypatch.delenv(name)
    args = build_parser().parse_args(argv)
    out = io.StringIO()
    code = args.func(args, stdout=out)
    return code, out.getvalue()


def test_the_quick_start_has_commands_to_check() -> None:
    commands = quick_start_commands()
    assert [c[0] for c in commands] == ["plan", "run"], commands


@pytest.mark.parametrize("argv", quick_start_commands(), ids=lambda a: " ".join(a))
def test_every_quick_start_command_plans_as_written(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `run X FLAGS` is planned as `plan X FLAGS`: the quote a run shows before it sends
    code, out = plan(["plan", *argv[1:]], monkeypatch)
    assert code == 0, out
    assert "problem" not in out and "unknown" not in out, out
    assert re.search(r"total .*\$\d", out), out


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_job_file_plans_as_written(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = plan(["plan", f"jobs/{name}"], monkeypatch)
    assert code == 0, out
    assert "problem" not in out and "unknown" not in out, out
    assert "$0.0000" not in out  # every job priced


def test_a_job_without_a_model_is_quoted_as_the_stated_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = tmp_path / "prompts.txt"
    jobs.write_text("a teapot\n", encoding="utf-8")
    code, out = plan(["plan", str(jobs)], monkeypatch)
    assert code == 0, out
    assert DEFAULT_MODEL in out and "batchgen's default" in out
    # --model wins, and then no default is mentioned
    code, out = plan(["plan", str(jobs), "--model", "gpt-image-1"], monkeypatch)
    assert code == 0 and "batchgen's default" not in out and "gpt-image-1 " in out
