"""`batchgen doctor` against the simulator over real HTTP: all ✓ when a run would start, and a
✗ naming cause and fix for a wrong key, a wrong base URL path, a closed port, an unknown host,
a self-signed TLS certificate and a model the endpoint does not serve. Nothing is sent to the
images API without --probe (counted at the simulator)."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchgen.cli.main import main
from batchgen.doctor import DoctorOptions, Status, run_diagnose
from batchgen.doctor.model import Diagnosis

KEY = "sk-doctor-0123456789abcdef"


def _jobs(tmp_path: Path, model: str = "gpt-image-1", count: int = 3) -> str:
    path = tmp_path / "jobs.jsonl"
    lines = [
        json.dumps({"prompt": f"a lighthouse {i}", "model": model, "quality": "low"})
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _opts(tmp_path: Path, base_url: str, key: str = KEY, **extra: Any) -> DoctorOptions:
    return DoctorOptions(
        base_url=base_url,
        api_key_env="DOCTOR_KEY",
        environ={"DOCTOR_KEY": key},
        run_dir=str(tmp_path / "runs"),
        timeout=5.0,
        **extra,
    )


def _failed(diagnosis: Diagnosis) -> list[Any]:
    return [c for c in diagnosis.checks() if c.status is Status.FAIL]


def _url(sim: Any, path: str = "/v1") -> str:
    return f"http://127.0.0.1:{sim.port}{path}"


def test_all_checks_pass_against_the_simulator_and_nothing_is_spent(make_sim, tmp_path):
    sim = make_sim(api_key=KEY)
    opts = _opts(tmp_path, _url(sim), jobfile=_jobs(tmp_path))
    diagnosis = run_diagnose(opts)
    marks = {c.name: c.status for c in diagnosis.checks()}
    assert set(marks.values()) == {Status.OK}, diagnosis.to_json()
    for name in (
        "name resolution",
        "connect",
        "key present",
        "key accepted",
        "models",
        "rate limits",
        "job file",
        "writable",
        "free space",
    ):
        assert name in marks
    assert diagnosis.exit_code == 0
    stats = sim.stats.snapshot(timeline=False)
    assert stats["received"] == 0 and stats["images_served"] == 0
    assert stats["models_listed"] == 1
    text = json.dumps(diagnosis.to_json())
    assert KEY not in text
    # the autopilot's start read from the simulator's headers
    limits = next(c for c in diagnosis.checks() if c.name == "rate limits")
    assert "limit-requests=" in limits.seen and "req/min" in limits.seen


def test_a_wrong_key_is_refused_with_the_fix_naming_its_variable(make_sim, tmp_path):
    sim = make_sim(api_key=KEY)
    wrong = "sk-wrong-9876543210fedcba"
    diagnosis = run_diagnose(_opts(tmp_path, _url(sim), key=wrong))
    [bad] = _failed(diagnosis)
    assert bad.name == "key accepted" and bad.cause == "auth"
    assert "401" in bad.seen and "DOCTOR_KEY" in bad.fix
    assert diagnosis.exit_code == 2
    assert wrong not in json.dumps(diagnosis.to_json())


def test_no_key_set_says_which_variable(tmp_path):
    diagnosis = run_diagnose(
        DoctorOptions(
            base_url="https://api.example.invalid/v1",
            api_key_env="NOPE_KEY",
            environ={},
            run_dir=str(tmp_path),
            timeout=3.0,
        )
    )
    [bad] = _failed(diagnosis)  # the name does not resolve: the network check stops first
    assert bad.name == "name resolution"


def test_a_wrong_base_url_path_is_named(make_sim, tmp_path):
    sim = make_sim()
    diagnosis = run_diagnose(_opts(tmp_path, _url(sim, "/api/images")))
    [bad] = _failed(diagnosis)
    assert bad.name == "base URL" and "404" in bad.seen
    assert "/v1" in bad.fix


def test_a_closed_port_is_connection_refused(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    diagnosis = run_diagnose(_opts(tmp_path, f"http://127.0.0.1:{port}/v1"))
    [bad] = _failed(diagnosis)
    assert bad.name == "connect" and "refused" in bad.seen and bad.cause == "network"
    assert "port" in bad.fix


def test_an_unknown_host_fails_name_resolution(tmp_path):
    diagnosis = run_diagnose(_opts(tmp_path, "https://no-such-host.invalid/v1"))
    [bad] = _failed(diagnosis)
    assert bad.name == "name resolution" and "no-such-host.invalid" in bad.seen
    assert "host name" in bad.fix and diagnosis.exit_code == 2


@pytest.fixture
def self_signed_server(tmp_path: Path) -> Iterator[int]:
    """An https server on localhost whose certificate signs itself."""
    with _tls_server(tmp_path, "localhost", days=30) as port:
        yield port


@contextlib.contextmanager
def _tls_server(tmp_path: Path, name_on_cert: str, days: int) -> Iterator[int]:
    """An https server on 127.0.0.1 with a self-signed certificate for ``name_on_cert``,
    valid until ``days`` from now (negative: expired); its PEM at tmp_path/cert.pem."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name_on_cert)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=60))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name_on_cert)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "cert.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    both = tmp_path / "cert-and-key.pem"
    both.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(both)

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # the client refusing the certificate ends the handshake: expected

        def get_request(self) -> Any:
            sock, addr = self.socket.accept()
            return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    server = Server(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_self_signed_certificate_is_refused_with_the_fix(self_signed_server, tmp_path):
    diagnosis = run_diagnose(_opts(tmp_path, f"https://localhost:{self_signed_server}/v1"))
    [bad] = _failed(diagnosis)
    assert bad.name == "TLS" and "self-signed" in bad.seen
    assert "SSL_CERT_FILE" in bad.fix
    assert [c.name for c in diagnosis.checks()][:2] == ["name resolution", "connect"]


def test_a_model_the_endpoint_does_not_serve(make_sim, tmp_path):
    sim = make_sim()
    opts = _opts(
        tmp_path, _url(sim), jobfile=_jobs(tmp_path, model="house-model-7"), price_per_image=0.01
    )
    diagnosis = run_diagnose(opts)
    [bad] = _failed(diagnosis)
    assert bad.name == "models" and "house-model-7 not served" in bad.seen
    assert "gpt-image-1" in bad.seen and "--providers" in bad.fix
    assert sim.stats.snapshot(timeline=False)["received"] == 0


def test_a_job_the_model_refuses_is_named_with_its_line(make_sim, tmp_path):
    sim = make_sim()
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"prompt": "x", "model": "dall-e-3", "size": "256x256"}\n')
    diagnosis = run_diagnose(_opts(tmp_path, _url(sim), jobfile=str(jobs)))
    [bad] = _failed(diagnosis)
    assert bad.name == "job settings" and "jobs.jsonl:1" in bad.seen and "256x256" in bad.seen


def test_the_readmes_doctor_command_passes_on_the_shipped_example_file(make_sim, tmp_path):
    """README: `batchgen doctor jobs/examples.csv` checks the job file before you spend. Its
    last line names no model, which `plan` and `run` send as batchgen's default model; doctor
    failed it ("no model: … silently fall back to dall-e-2") and exited 2."""
    sim = make_sim(api_key=KEY)
    examples = Path(__file__).resolve().parents[1] / "jobs" / "examples.csv"
    diagnosis = run_diagnose(_opts(tmp_path, _url(sim), jobfile=str(examples)))
    assert not _failed(diagnosis) and diagnosis.exit_code == 0
    [job_file] = [c for c in diagnosis.checks() if c.name == "job file"]
    assert job_file.status is Status.OK and "5 jobs" in job_file.seen


def test_a_one_job_file_reads_singular(make_sim, tmp_path):
    sim = make_sim(api_key=KEY)
    diagnosis = run_diagnose(_opts(tmp_path, _url(sim), jobfile=_jobs(tmp_path, count=1)))
    [job_file] = [c for c in diagnosis.checks() if c.name == "job file"]
    assert job_file.seen.startswith("1 job, 1 image, "), job_file.seen  # was "1 jobs, 1 images"


def test_too_little_free_space_is_a_fail(make_sim, tmp_path, monkeypatch):
    import shutil

    sim = make_sim()
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage._replace(free=1024))
    diagnosis = run_diagnose(_opts(tmp_path, _url(sim), jobfile=_jobs(tmp_path)))
    [bad] = _failed(diagnosis)
    assert bad.name == "free space" and bad.cause == "disk"


def test_probe_sends_one_cheapest_request_after_confirmation(make_sim, tmp_path):
    sim = make_sim(api_key=KEY)
    asked: list[str] = []
    opts = _opts(tmp_path, _url(sim), jobfile=_jobs(tmp_path), probe=True)
    refused = run_diagnose(opts, confirm=lambda text: asked.append(text) is not None)
    assert asked and "at most $" in asked[0]
    assert sim.stats.snapshot(timeline=False)["received"] == 0
    assert any(c.name == "probe" and c.status is Status.UNKNOWN for c in refused.checks())
    sent = run_diagnose(opts, confirm=lambda text: True)
    stats = sim.stats.snapshot(timeline=False)
    assert stats["received"] == 1 and stats["images_served"] == 1
    probe = next(c for c in sent.checks() if c.name == "probe")
    assert probe.status is Status.OK and sent.spent_usd > 0
    saved = list((tmp_path / "runs").glob("doctor-probe-*/probe-default_0.png"))
    assert len(saved) == 1 and saved[0].read_bytes().startswith(b"\x89PNG")


def test_cli_json_and_exit_codes(make_sim, tmp_path, monkeypatch, capsys):
    sim = make_sim(api_key=KEY)
    monkeypatch.setenv("DOCTOR_KEY", KEY)
    base = [
        "doctor",
        "--api-key-env",
        "DOCTOR_KEY",
        "--run-dir",
        str(tmp_path / "r"),
        "--format",
        "json",
    ]
    assert main([*base, "--base-url", _url(sim), _jobs(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["would_start"] is True and doc["exit_code"] == 0
    monkeypatch.setenv("DOCTOR_KEY", "sk-not-the-key-000")
    assert main([*base, "--base-url", _url(sim)]) == 2
    out = capsys.readouterr().out
    assert "sk-not-the-key-000" not in out and json.loads(out)["would_start"] is False


def test_a_providers_file_checks_each_endpoint(make_sim, tmp_path):
    sim = make_sim(api_key=KEY)
    providers = tmp_path / "providers.toml"
    providers.write_text(f"""
[[endpoint]]
name = "main"
protocol = "openai"
base_url = "{_url(sim)}"
key_env = "DOCTOR_KEY"
models = ["gpt-image-1"]

[[endpoint]]
name = "flux"
protocol = "bfl"
base_url = "http://127.0.0.1:{sim.port}/bfl/v1"
key_env = "FLUX_KEY"
models = ["flux-dev"]
""")
    opts = DoctorOptions(
        providers=str(providers),
        jobfile=_jobs(tmp_path),
        environ={"DOCTOR_KEY": KEY},
        run_dir=str(tmp_path / "runs"),
    )
    diagnosis = run_diagnose(opts)
    titles = [s.title for s in diagnosis.sections]
    assert titles[0].startswith("endpoint main (openai") and titles[1].startswith("endpoint flux")
    flux = {c.name: c for c in diagnosis.sections[1].checks}
    assert flux["key present"].status is Status.OK and "needs none" in flux["key present"].seen
    assert flux["key accepted"].status is Status.UNKNOWN and "--probe" in flux["key accepted"].fix
    assert flux["models"].seen == "no job of the file goes to this endpoint"
    main_checks = {c.name: c.status for c in diagnosis.sections[0].checks}
    assert main_checks["models"] is Status.OK and diagnosis.exit_code == 0


@pytest.mark.parametrize(
    ("name_on_cert", "days", "said", "fix"),
    [
        ("localhost", -1, "has expired", "renew"),
        ("api.other.example", 30, "for another name", "host name the certificate names"),
    ],
    ids=["expired", "hostname"],
)
def test_a_trusted_certificate_that_expired_or_names_another_host(
    tmp_path, monkeypatch, name_on_cert, days, said, fix
):
    with _tls_server(tmp_path, name_on_cert, days) as port:
        # the test's certificate trusted the way a user trusts a private CA
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
        diagnosis = run_diagnose(_opts(tmp_path, f"https://localhost:{port}/v1"))
    [bad] = _failed(diagnosis)
    assert bad.name == "TLS" and said in bad.seen and fix in bad.fix
