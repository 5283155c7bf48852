"""run.json (manifest, sessions, secrets stripped) and the one-writer lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from batchgen.runlog.rundir import RunDir, RunDirBusy, RunDirError, redact_argv, strip_secrets

SECRET = "sk-proj-ABCDEFGH1234567890secret"


def make_run(tmp_path: Path, settings: dict | None = None) -> RunDir:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"prompt": "a cat"}\n')
    rd = RunDir(tmp_path / "runs" / "x")
    rd.create(jobs, "ab" * 32, job_count=1, image_count=2, settings=settings or {"rpm": 60})
    return rd


def test_manifest_round_trip_and_secrets_never_reach_the_file(tmp_path: Path) -> None:
    settings = {
        "rpm": 600,
        "max_tokens": 4000,  # a number under a token-ish key is not a secret
        "api_key_env": "OPENAI_API_KEY",  # an env var NAME is kept
        "api_key": SECRET,
        "provider": {"base_url": "http://127.0.0.1:1/v1", "auth_token": "hunter2"},
        "headers": {"Authorization": "Bearer opaque-value"},
        "note": f"pasted by mistake: {SECRET}",
    }
    rd = make_run(tmp_path, settings)
    text = rd.manifest_path.read_text()
    assert SECRET not in text and "hunter2" not in text and "opaque-value" not in text
    doc = rd.load()
    assert doc["settings"] == {
        "rpm": 600,
        "max_tokens": 4000,
        "api_key_env": "OPENAI_API_KEY",
        "provider": {"base_url": "http://127.0.0.1:1/v1"},
        "headers": {},
    }
    assert sorted(doc["settings_stripped"]) == [
        "api_key",
        "headers.Authorization",
        "note",
        "provider.auth_token",
    ]
    assert doc["version"] == 1 and len(doc["run_id"]) == 32 and doc["sessions"] == []
    assert doc["job_file"] == str((tmp_path / "jobs.jsonl").resolve())
    assert doc["job_file_sha256"] == "ab" * 32 and (doc["jobs"], doc["images"]) == (1, 2)
    assert rd.log_dir.is_dir() and rd.images_dir.is_dir() and rd.state_dir.is_dir()


def test_create_refuses_an_existing_run(tmp_path: Path) -> None:
    rd = make_run(tmp_path)
    with pytest.raises(RunDirError, match="batchgen resume"):
        rd.create(tmp_path / "jobs.jsonl", "0" * 64, 1, 1, {})


def test_sessions_begin_end_and_crash_marking(tmp_path: Path) -> None:
    rd = make_run(tmp_path)
    argv = [
        "batchgen",
        "run",
        "jobs.jsonl",
        "--api-key",
        SECRET,
        f"--token={SECRET}",
        "--api-key-env",
        "MY_KEY",
    ]
    s1 = rd.begin_session({"rpm": 30, "secret": "x"}, argv)
    s2 = rd.begin_session({}, ["batchgen", "resume", "runs/x"])
    assert (s1, s2) == (1, 2)
    rd.end_session(s2, "stopped_quota", {"done": 3})
    assert rd.unended_sessions() == [1]
    assert SECRET not in rd.manifest_path.read_text()
    sessions = rd.load()["sessions"]
    assert sessions[0]["command"] == [
        "batchgen",
        "run",
        "jobs.jsonl",
        "--api-key",
        "***",
        "--token=***",
        "--api-key-env",
        "MY_KEY",
    ]
    assert sessions[0]["settings"] == {"rpm": 30} and sessions[0]["pid"] == os.getpid()
    assert sessions[1]["how"] == "stopped_quota" and sessions[1]["summary"] == {"done": 3}
    assert sessions[1]["ended_at"] >= sessions[1]["started_at"]
    assert rd.mark_crashed() == [1]
    assert rd.load()["sessions"][0]["how"] == "crashed" and rd.unended_sessions() == []
    with pytest.raises(ValueError, match="completed"):
        rd.end_session(1, "exploded", {})
    with pytest.raises(RunDirError, match="no session 9"):
        rd.end_session(9, "completed", {})


def test_manifest_writes_are_atomic_no_temp_left(tmp_path: Path) -> None:
    rd = make_run(tmp_path)
    for _ in range(3):
        rd.begin_session({}, ["batchgen"])
    assert [p.name for p in rd.path.iterdir() if p.name.startswith(".")] == []
    json.loads(rd.manifest_path.read_text())


def test_load_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="not a batchgen run directory"):
        RunDir(tmp_path / "nope").load()
    rd = make_run(tmp_path)
    rd.manifest_path.write_text('{"version": 1,\n oops}')
    with pytest.raises(RunDirError, match=r"run.json:2: not valid JSON"):
        rd.load()


def test_helpers_strip_and_redact() -> None:
    clean, dropped = strip_secrets({"list": [SECRET, "ok"], "SECRET_ENV": "VAR_NAME"})
    assert clean == {"list": ["ok"], "SECRET_ENV": "VAR_NAME"} and dropped == ["list[0]"]
    assert redact_argv(["--key", "lowercase-not-env"]) == ["--key", "***"]
    assert redact_argv([f"prompt with {SECRET}"]) == ["prompt with sk-***"]


HOLDER = textwrap.dedent(
    """
    import sys
    from batchgen.runlog.rundir import RunDir
    with RunDir(sys.argv[1]).lock():
        print("locked", flush=True)
        sys.stdin.readline()   # hold until the parent says so (or kills us)
    print("released", flush=True)
    """
)


def start_holder(path: Path) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


def test_second_holder_is_refused_with_pid_and_advice(tmp_path: Path) -> None:
    rd = make_run(tmp_path)
    holder = start_holder(rd.path)
    try:
        with pytest.raises(RunDirBusy) as info, rd.lock():
            pytest.fail("lock acquired twice")
        msg = str(info.value)
        assert f"pid {holder.pid}" in msg and f"kill {holder.pid}" in msg
        assert "batchgen resume" in msg
    finally:
        holder.communicate("go\n", timeout=30)
    assert holder.returncode == 0
    with rd.lock():  # released cleanly
        assert json.loads(rd.lock_path.read_text())["pid"] == os.getpid()


def test_lock_of_a_killed_holder_is_not_stale(tmp_path: Path) -> None:
    rd = make_run(tmp_path)
    holder = start_holder(rd.path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert json.loads(rd.lock_path.read_text())["pid"] == holder.pid  # info left behind
    with rd.lock():
        assert json.loads(rd.lock_path.read_text())["pid"] == os.getpid()


def test_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    rd = make_run(tmp_path)
    with rd.lock(), pytest.raises(RunDirBusy, match=f"pid {os.getpid()}"), RunDir(rd.path).lock():
        pass
