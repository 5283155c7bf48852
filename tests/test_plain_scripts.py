"""Issues 22 and 23: the library from a plain script — no ``if __name__ == "__main__":``
guard, run from a file, from stdin and with ``python -c`` — runs, resumes and reports with
image checks, each job generated once (counted at the simulator); the image-check workers
never re-run the caller's script and never take the terminal's Ctrl-C; a relative run
directory's images are found (the demo's commands)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.runhelpers import MODEL_FLAGS, SECRET_KEY, cli_env, run_cli

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[1]
JOBS = 24  # more than the report measures in its own process (16): its workers start

# no main guard; a run directory per process (by time, as people name them): a worker that
# re-ran this script would run the whole batch again, billed again
SCRIPT = """
import os, time
import batchgen
jobs = [{"prompt": f"a plain script picture {i}"} for i in range(int(os.environ["N_JOBS"]))]
run_dir = f"runs/script-{time.time_ns()}"
result = batchgen.run(jobs, run_dir=run_dir, base_url=os.environ["SIM_URL"], image_checks=True,
                      model="gpt-image-1", size="1024x1024", quality="low")
again = batchgen.resume(run_dir)
report = batchgen.report(run_dir)
checks = __import__("json").loads(report.to_json())["image_checks"]
counts = checks["counts"]
print("RESULT", result.succeeded, again.succeeded, checks["checked"], counts["undecodable"],
      counts["missing"])
"""


def _env(sim: Any) -> dict[str, str]:
    env = cli_env(SECRET_KEY)
    env.update(SIM_URL=sim.base_url, N_JOBS=str(JOBS))
    return env


@pytest.mark.parametrize("how", ["file", "stdin", "-c"])
def test_a_script_without_a_main_guard_runs_each_job_once(
    make_sim: Any, tmp_path: Path, how: str
) -> None:
    sim = make_sim(api_key=SECRET_KEY)
    (tmp_path / "script.py").write_text(SCRIPT)
    args: list[str] = {"file": ["script.py"], "stdin": ["-"], "-c": ["-c", SCRIPT]}[how]
    done = subprocess.run(
        [sys.executable, *args],
        cwd=tmp_path,
        env=_env(sim),
        capture_output=True,
        text=True,
        input=SCRIPT if how == "stdin" else None,
        timeout=150,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output and "bootstrapping" not in output
    assert f"RESULT {JOBS} {JOBS} {JOBS} 0 0" in done.stdout, output
    # each job generated exactly once: no worker re-ran the script
    assert sim.stats.received == JOBS
    assert all(n == 1 for n in sim.stats.by_prompt.values())
    assert len(list((tmp_path / "runs").iterdir())) == 1  # no stray run of a worker


def _children(pid: int) -> list[str]:
    """Command lines of ``pid``'s child processes."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for kid in kids:
            try:
                out.append(Path(f"/proc/{kid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return out


def test_ctrl_c_to_the_process_group_during_image_checks_prints_no_traceback(
    make_sim: Any, tmp_path: Path
) -> None:
    sim = make_sim(api_key=SECRET_KEY, latency_mean=0.2)
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(f"a picture for ctrl-c {i}\n" for i in range(400)))
    env = cli_env(SECRET_KEY)
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batchgen",
                "run",
                str(jobs),
                "--run-dir",
                "run",
                "--base-url",
                sim.base_url,
                "--concurrency",
                "16",
                "--yes",
                *MODEL_FLAGS,
            ],
            cwd=tmp_path,
            env=env,
            stdout=o,
            stderr=e,
            start_new_session=True,
        )
        try:
            # the image checks' workers are running (they start once ~50 images wait)
            deadline = time.monotonic() + 60
            while not any("checks" in c or "spawn_main" in c for c in _children(proc.pid)):
                assert proc.poll() is None, out.read_text() + err.read_text()
                assert time.monotonic() < deadline, "the image checks never started"
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal's Ctrl-C does
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = out.read_text() + err.read_text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert "process pool is not usable" not in text, text
    assert code in (1, 3, 130), text
    assert sim.stats.received < 400


def test_a_relative_run_dir_finds_its_images_and_a_second_report_decodes_nothing(
    make_sim: Any, tmp_path: Path
) -> None:
    """Fast: the test simulator's 64x64 images (so "wrong_size" and look-alike "duplicate"
    findings are expected; never "undecodable" or "missing")."""
    sim = make_sim(api_key=SECRET_KEY)
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(f"a relative picture {i}\n" for i in range(20)))
    env = cli_env(SECRET_KEY)
    run = [
        "run",
        "jobs.txt",
        "--run-dir",
        "runs/rel",
        "--base-url",
        sim.base_url,
        "--yes",
        *MODEL_FLAGS,
    ]
    done = run_cli(run, env=env, cwd=tmp_path)
    assert done.code == 0, done.output
    reports = []
    for _ in range(2):
        done = run_cli(["report", "runs/rel", "--format", "json"], env=env, cwd=tmp_path)
        assert done.code == 0, done.output
        reports.append(json.loads(done.stdout)["image_checks"])
    first, second = reports
    assert first["checked"] == 20 and first["measured"]["now"] == 20
    counts = first["counts"]
    assert counts["wrong_size"] == 20 and counts["undecodable"] == counts["missing"] == 0
    assert second["measured"] == {"stored": 20, "now": 0, "unmeasured": 0}


@pytest.mark.slow
def test_the_demo_with_a_relative_run_dir_flags_no_good_image_and_decodes_once(
    tmp_path: Path,
) -> None:
    shutil.copy(ROOT / "jobs" / "demo.jsonl", tmp_path / "demo.jsonl")
    env = cli_env(None)
    # the demo's own command (Makefile `demo`), faster: its simulator renders full-size images
    run = [
        "run",
        "demo.jsonl",
        "--provider",
        "sim",
        "--run-dir",
        "runs/demo",
        "--sim-faults",
        "server=0.1,rate_limit=0.05,content_policy=0.05",
        "--sim-latency",
        "0.05",
    ]
    done = run_cli(run, env=env, cwd=tmp_path)
    assert done.code in (0, 1), done.output  # the demo holds a refused prompt
    reports = []
    for _ in range(2):
        done = run_cli(["report", "runs/demo", "--format", "json"], env=env, cwd=tmp_path)
        assert done.code == 0, done.output
        reports.append(json.loads(done.stdout)["image_checks"])
    first, second = reports
    assert first["checked"] > 16  # more than the report checks in its own process
    assert first["flagged"] == 0 and first["counts"]["undecodable"] == 0, first["findings"]
    assert second["flagged"] == 0
    # the second report decodes nothing: every measurement is stored
    assert second["measured"] == {"stored": second["checked"], "now": 0, "unmeasured": 0}
