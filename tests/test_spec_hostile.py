"""Issue 22 #8, #9: hostile specs and edit inputs — alias bombs, deep nesting, duplicate
keys, a symlink loop under ``**``, a spec's glob relative to its own folder, a spec too big to
check silently, an edit input swapped for a FIFO or a device or grown sparse."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchgen.jobs import iter_jobs
from batchgen.jobs.spec import SpecProblems, load_spec
from tests.runhelpers import cli_env, run_cli, sim_flags, write_jsonl_jobs

BOMB_DEFAULTS = """\
a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
"""


# what these guard against (an alias bomb expanding 10^9 nodes, a symlink loop walked
# forever) takes minutes or never ends; each case takes under a second alone, and a shared
# 2-core machine at load 7 stretched one to 2.1 s: the bound tells a hang from a slow machine
HANG_S = 15.0


def _problem(path: Path) -> str:
    started = time.monotonic()
    with pytest.raises(SpecProblems) as caught:
        load_spec(path)
    assert time.monotonic() - started < HANG_S
    return str(caught.value)


@pytest.mark.parametrize("where", ["defaults", "list"])
def test_an_alias_bomb_is_refused_quickly_with_file_and_line(tmp_path: Path, where: str) -> None:
    path = tmp_path / "bomb.yaml"
    if where == "defaults":
        body = "defaults: {model: gpt-image-1, extra: [*e, *e, *e]}\nprompt: a mug\n"
    else:
        body = "defaults: {model: gpt-image-1}\nprompt: a mug\nstuff: [*e, *e, *e]\n"
    path.write_text(BOMB_DEFAULTS + body)
    message = _problem(path)
    assert f"{path}:" in message and "alias" in message
    line = int(message.split(f"{path}:")[1].split(":")[0])
    assert line == (6 if where == "defaults" else 8), message  # where it blows up


def test_deep_nesting_is_a_clear_error_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("prompt: a mug\nextra: " + "[" * 50_000 + "]" * 50_000 + "\n")
    message = _problem(path)
    assert f"{path}:2:" in message and "nested more than" in message


def test_a_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        "defaults: {model: gpt-image-1}\nprompt: 'a {x}'\nmatrix: {x: [1, 2, 3]}\n"
        "repeat: 1\nmatrix: {x: [4]}\n"
    )
    message = _problem(path)
    assert f"{path}:5:" in message and "lines 3 and 5" in message and "matrix" in message


def _photos(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem in ("a", "b"):
        Image.new("RGB", (32, 32), "red").save(folder / f"{stem}.png")


def test_a_symlink_loop_under_a_recursive_glob_does_not_hang(tmp_path: Path) -> None:
    _photos(tmp_path / "photos" / "sub")
    os.symlink(tmp_path / "photos", tmp_path / "photos" / "sub" / "loop")
    path = tmp_path / "s.yaml"
    path.write_text("defaults: {model: gpt-image-1}\nprompt: 'the {stem}'\nimages: photos/**\n")
    started = time.monotonic()
    spec = load_spec(path)
    assert time.monotonic() - started < HANG_S
    assert spec.files is not None and sorted(p.name for p in spec.files) == ["a.png", "b.png"]


def test_a_specs_glob_resolves_from_its_own_folder_whatever_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _photos(tmp_path / "spec" / "photos")
    (tmp_path / "spec" / "s.yaml").write_text(
        "defaults: {model: gpt-image-1}\nprompt: 'the {stem}'\nimages: photos/*.png\n"
    )
    monkeypatch.chdir(tmp_path)
    jobs = list(iter_jobs(Path("spec/s.yaml")))
    assert len(jobs) == 2
    want = {str(tmp_path / "spec" / "photos" / n) for n in ("a.png", "b.png")}
    assert {i.path for job in jobs for i in job.inputs} == want


def test_a_spec_too_big_to_check_says_its_count_and_asks(tmp_path: Path) -> None:
    values = ", ".join(str(i) for i in range(1000))
    path = tmp_path / "huge.yaml"
    path.write_text(
        "defaults: {model: gpt-image-1-mini}\nprompt: 'a {a} {b} {c}'\n"
        f"matrix: {{a: [{values}], b: [{values}], c: [{values}]}}\n"
    )
    started = time.monotonic()
    done = run_cli(
        ["run", str(path), "--run-dir", str(tmp_path / "run"), "--provider", "sim"], env=cli_env()
    )
    assert done.code == 2, done.output
    assert "expands to 1,000,000,000 jobs" in done.output and "--max-jobs" in done.output
    assert time.monotonic() - started < 30
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("swap", ["fifo", "device", "sparse"])
def test_an_edit_input_that_is_not_a_small_regular_file_is_refused_not_read(
    tmp_path: Path, sim: Any, swap: str
) -> None:
    Image.new("RGB", (32, 32), "blue").save(tmp_path / "ok.png")
    target = tmp_path / "in.png"
    if swap == "fifo":
        os.mkfifo(target)
    elif swap == "device":
        os.symlink("/dev/zero", target)
    else:
        with open(target, "wb") as f:
            f.truncate(20 * 1024**3)  # sparse: 20 GB on paper, nothing on disk
    jobs = write_jsonl_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"id": "bad", "prompt": "edit it", "image": "in.png", "model": "gpt-image-1"},
        ],
    )
    started = time.monotonic()
    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(tmp_path / "run"),
            *sim_flags(sim),
            "--yes",
            "--timeout",
            "5",
        ],
        env=cli_env(),
    )
    assert time.monotonic() - started < 30
    assert done.code == 2, done.output
    assert "in.png" in done.output and ("regular file" in done.output or "MB" in done.output)
    assert "Traceback" not in done.output and "MemoryError" not in done.output


def test_an_edit_input_swapped_for_a_fifo_mid_run_fails_that_job_without_hanging(
    tmp_path: Path, make_sim: Any
) -> None:
    from batchgen.errors import AttemptError
    from batchgen.provider.edits import edit_request

    Image.new("RGB", (32, 32), "blue").save(tmp_path / "in.png")
    jobs = write_jsonl_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"id": "e", "prompt": "edit it", "image": "in.png", "model": "gpt-image-1"},
        ],
    )
    [job] = list(iter_jobs(jobs))
    (tmp_path / "in.png").unlink()
    os.mkfifo(tmp_path / "in.png")  # swapped after the job file was checked
    import anyio

    started = time.monotonic()
    with pytest.raises(AttemptError, match="regular file"):
        anyio.run(edit_request, job)
    assert time.monotonic() - started < HANG_S
