"""Hostile round 4: what the user's commands are given. ``--on-budget CMD`` runs a shell
command the user wrote (often `curl` to a webhook): like ``--on-end``, it must not inherit
the run's API key variables — a command's environment is dumped by debug wrappers, CI
runners and crash reporters. Real runs on the simulator, the hook a real shell."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from batchgen.cli.main import main
from tests.runhelpers import SECRET_KEY, sim_flags, wait_until

HD = {"model": "dall-e-3", "quality": "hd", "size": "1024x1024"}  # $0.08 an image


def _jobs(path: Path, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({**HD, "prompt": f"job {i}: a lighthouse"}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _env_dump_hook(out: Path) -> str:
    """A shell command writing its whole environment as JSON to ``out`` (once per call)."""
    code = (
        "import json, os, sys; "
        f"open({str(out)!r}, 'a').write(json.dumps(dict(os.environ)) + chr(10))"
    )
    return f'{sys.executable} -c "{code}"'


@pytest.mark.parametrize("key_env", ["OPENAI_API_KEY", "MY_GATEWAY_KEY"])
def test_on_budget_never_gets_the_key_variable(tmp_path, sim, monkeypatch, capsys, key_env):
    dump = tmp_path / "hook-env.jsonl"
    jobs = _jobs(tmp_path / "p" / "jobs.jsonl", 7)  # $0.56 of $1: the 50 % alert fires
    monkeypatch.setenv(key_env, SECRET_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("BATCHGEN_LEDGER", str(tmp_path / "ledger.sqlite"))
    extra = [] if key_env == "OPENAI_API_KEY" else ["--api-key-env", key_env]
    code = main(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(tmp_path / "run"),
            "--monthly-budget",
            "1",
            "--on-budget",
            _env_dump_hook(dump),
            "--concurrency",
            "1",
            "--yes",
            *extra,
            *sim_flags(sim),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "budget alert: 50 %" in " ".join(out.out.split())
    wait_until(lambda: dump.exists() and dump.read_text().strip(), what="the hook's environment")
    env = json.loads(dump.read_text().splitlines()[0])
    assert env["BATCHGEN_BUDGET_PERCENT"] == "50"  # the hook did run with its event
    assert key_env not in env
    assert SECRET_KEY not in dump.read_text()


def test_an_on_end_command_that_hangs_is_stopped_without_echoing_it(
    tmp_path, sim, monkeypatch, capsys
):
    """The command line often carries a webhook's token (run.json and the recorded argv mask
    it); the timeout's warning quoted it whole on stderr (a CI log)."""
    from batchgen.notify import send

    monkeypatch.setattr(send, "ON_END_TIMEOUT_S", 0.5)  # the knob, not a wait of 120 s
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    token = "T0K3N-xoxb-0123456789"
    jobs = _jobs(tmp_path / "jobs.jsonl", 2)
    pidfile = tmp_path / "sleep.pid"
    hook = f"sleep 30 & echo $! > {pidfile}; wait; curl -d done https://hooks.example/{token}"
    args = ["run", str(jobs), "--run-dir", str(tmp_path / "run"), "--yes", "--quiet"]
    code = main([*args, "--on-end", hook, *sim_flags(sim)])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "--on-end" in out.err and "0.5 s" in out.err  # said, with the limit it met
    assert token not in out.out + out.err
    # what the command started was stopped with it (a zombie awaiting its reaper is stopped)
    # (the signal is sent when the warning is said; the kernel ends the process a moment
    # later, so its state is polled, not read once: a poll, not a timing assumption)
    status = Path(f"/proc/{pidfile.read_text().strip()}/status")
    if status.parent.parent.is_dir():
        assert _ends(status), status.read_text()


def _ends(status: Path, within_s: float = 10.0) -> bool:
    """The process of ``status`` is gone or a zombie within ``within_s`` seconds (a sleep 30
    never signalled is neither for 30 s)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if "State:\tZ" in status.read_text():
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.01)
    return False
