"""Round three: job ids that start with a Windows device name and a dot ("nul.v2", "AUX.1",
a spec with ``id: aux``, whose jobs are "aux.c=a"...). Windows opens the device for any file
name starting so ("NUL.txt" is NUL): ``images/nul.v2_0.png`` would be written to the device,
logged as saved, and be gone. Refused before anything is sent, with the line and a fix, as the
ids that differ only in case are (their files would overwrite each other on macOS and
Windows). A device name without the dot ("CON" → ``CON_0.png``) is an ordinary file name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.runhelpers import cli_env, run_cli, sim_flags, write_jsonl_jobs


def test_an_id_opening_a_windows_device_is_refused_before_sending(
    make_sim: Any, tmp_path: Path
) -> None:
    sim = make_sim()
    jobs = write_jsonl_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"id": "CON", "prompt": "fine: CON_0.png is a file"},
            {"id": "nul.v2", "prompt": "a"},
            {"id": "Com1.x", "prompt": "b"},
            {"id": "console.x", "prompt": "fine: not a device name"},
        ],
    )
    run_dir = tmp_path / "run"
    done = run_cli(
        ["run", str(jobs), "--run-dir", str(run_dir), "--model", "gpt-image-1", *sim_flags(sim)],
        env=cli_env(),
    )
    assert done.code == 2, done.output
    assert f'{jobs}:2: id "nul.v2" starts with the Windows device name NUL' in done.stderr
    assert f'{jobs}:3: id "Com1.x" starts with the Windows device name COM1' in done.stderr
    assert '"nul-v2"' in done.stderr  # the fix
    assert f"{jobs}:1:" not in done.stderr and f"{jobs}:4:" not in done.stderr
    assert sim.stats.received == 0 and not run_dir.exists()


def test_a_spec_id_prefix_naming_a_device_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("prompt: 'a {c} mug'\nid: aux\nmatrix: {c: [red, blue]}\n")
    done = run_cli(["plan", str(spec)], env=cli_env())
    assert done.code == 2, done.output
    assert 'id "aux.c=red" starts with the Windows device name AUX' in done.output
    assert "another id: prefix" in done.output
