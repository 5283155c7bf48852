"""The fronts of a cluster run without a cluster: `--ray` / ``ray=`` refuse what a cluster
cannot do before anything is made, and a run without them never loads Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import batchgen
from batchgen.apiargs import ray_address
from batchgen.errors import ConfigError, UsageError
from tests.runhelpers import cli_env


def _jobs(tmp_path: Path, count: int = 3) -> Path:
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"a kite {i}"}) + "\n" for i in range(count)))
    return path


def test_ray_keyword_is_checked_as_the_flag() -> None:
    assert ray_address(None) is None
    assert ray_address(False) is None
    assert ray_address(True) == ""  # a cluster of this machine (or $RAY_ADDRESS)
    assert ray_address(" 127.0.0.1:6379 ") == "127.0.0.1:6379"
    for bad in (1, "", "  ", ["127.0.0.1:6379"]):
        with pytest.raises(ConfigError, match="ray must be"):
            ray_address(bad)


def test_the_in_process_simulator_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(UsageError, match="batchgen sim"):
        batchgen.run(_jobs(tmp_path), run_dir=run_dir, provider="sim", ray=True)
    assert not run_dir.exists()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchgen",
            "run",
            str(_jobs(tmp_path)),
            "--provider",
            "sim",
            "--run-dir",
            str(run_dir),
            "--yes",
            "--ray",
        ],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--ray needs a provider every worker reaches" in done.stderr
    assert not run_dir.exists()


_PLAIN = """
import sys
import batchgen
result = batchgen.run(sys.argv[1], run_dir=sys.argv[2], provider="sim", image_checks=False,
                      sim={"latency": 0.0, "tiny": True})
assert result.ok, result
print(sorted(m for m in sys.modules if m == "ray" or m.startswith(("ray.", "batchgen.cluster"))))
"""


def test_a_run_without_ray_never_imports_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PLAIN, str(_jobs(tmp_path)), str(tmp_path / "run")],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_resume_over_the_cluster_refuses_what_it_cannot_run_before_a_session(
    tmp_path: Path,
) -> None:
    """``resume --ray`` / ``resume(ray=...)``: the in-process simulator, --regenerate-below
    and a bad ``ray=`` are refused before the run directory is touched (no session begun)."""
    jobs = _jobs(tmp_path)
    run_dir = tmp_path / "run"
    batchgen.run(jobs, run_dir=run_dir, provider="sim", image_checks=False, sim={"latency": 0.0})
    with jobs.open("a") as f:  # two jobs more: the rest a resume would run
        f.write("".join(json.dumps({"prompt": f"a kite {i}"}) + "\n" for i in (7, 8)))
    before = json.loads((run_dir / "run.json").read_text())["sessions"]
    with pytest.raises(ConfigError, match="ray must be"):
        batchgen.resume(run_dir, ray=1)
    with pytest.raises(UsageError, match="batchgen sim"):
        batchgen.resume(run_dir, ray=True)
    done = subprocess.run(
        [sys.executable, "-m", "batchgen", "resume", str(run_dir), "--yes", "--ray"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--ray needs a provider every worker reaches" in done.stderr
    regen = [*("--regenerate-below", "5"), "--ray=127.0.0.1:1"]
    done = subprocess.run(
        [sys.executable, "-m", "batchgen", "resume", str(run_dir), "--yes", *regen],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "drop --via batch, --regenerate-below" in done.stderr
    assert json.loads((run_dir / "run.json").read_text())["sessions"] == before
