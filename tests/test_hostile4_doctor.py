"""Hostile round 4: `batchgen doctor` against a base URL whose server takes the connection
and never answers (a stuck proxy, a port-forward to nothing). The check must say that — no
answer in the time it waited — not an empty "TimeoutError: ", and the key never appears.
A real socket that accepts and stays silent; the doctor's own timeout knob."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchgen.doctor import DoctorOptions, Status, run_diagnose

KEY = "sk-doctor4-SECRET-0123456789"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP server that accepts every connection, reads nothing and answers nothing."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_a_server_that_never_answers_is_named_as_such(tmp_path: Path, silent_port: int) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"prompt": "a lighthouse", "model": "gpt-image-1", "quality": "low"}\n')
    opts = DoctorOptions(
        base_url=f"http://127.0.0.1:{silent_port}/v1",
        api_key_env="DOCTOR_KEY",
        environ={"DOCTOR_KEY": KEY},
        jobfile=str(jobs),
        run_dir=str(tmp_path / "runs"),
        timeout=0.5,
    )
    diagnosis = run_diagnose(opts)
    [bad] = [c for c in diagnosis.checks() if c.status is Status.FAIL]
    assert bad.name == "key accepted" and bad.cause == "network"
    assert "no answer" in bad.seen and "0.5 s" in bad.seen, bad.seen
    assert "connected" in bad.seen  # the TCP connection was taken: not a firewall drop
    assert KEY not in bad.seen + bad.fix
