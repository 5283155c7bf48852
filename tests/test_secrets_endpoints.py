"""Issue 22 #6, #9 and "found while verifying" #3: secrets where an endpoint is named — a key
pasted into key_env, a token in a URL's userinfo, a query secret in a base URL — never
echoed nor stored; a lower-case key_env kept so resume works; Azure's `deployment = "name"`.
The real CLI against the simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batchgen.provider.endpoints import load_providers
from tests.runhelpers import MODEL_FLAGS, cli_env, log_table, ok_counts, run_cli, write_text_jobs
from tests.test_providers_run import env_with, providers_file

HEX_KEY = "d41d8cd98f00b204e9800998ecf8427e"


def _everything_in(run_dir: Path) -> str:
    if not run_dir.exists():
        return ""
    return "".join(p.read_bytes().decode("latin-1") for p in run_dir.rglob("*") if p.is_file())


def _jobs(tmp_path: Path, n: int = 3) -> Path:
    return write_text_jobs(tmp_path / "jobs.txt", (f"a calm lagoon {i}" for i in range(n)))


@pytest.mark.parametrize("where", ["providers", "flag"])
def test_a_key_pasted_into_key_env_is_never_echoed(tmp_path: Path, where: str) -> None:
    run_dir = tmp_path / "run"
    args = ["run", str(_jobs(tmp_path)), "--run-dir", str(run_dir), "--yes"]
    if where == "providers":
        ep = {
            "name": "az",
            "protocol": "openai",
            "base_url": "https://api.example.invalid/v1",
            "key_env": HEX_KEY,
            "models": ["gpt-image-1"],
        }
        args += ["--providers", str(providers_file(tmp_path / "p.toml", [ep]))]
    else:
        args += [
            *MODEL_FLAGS,
            "--base-url",
            "https://api.example.invalid/v1",
            "--api-key-env",
            HEX_KEY,
        ]
    done = run_cli(args, env=cli_env(None))
    assert done.code == 2, done.output
    assert "looks like a key itself" in done.output and "NAME" in done.output
    assert HEX_KEY not in done.output and HEX_KEY not in _everything_in(run_dir)
    assert "Traceback" not in done.output


@pytest.mark.parametrize("where", ["providers", "flag"])
def test_a_token_in_a_base_urls_userinfo_is_refused_never_stored(
    make_sim: Any, tmp_path: Path, where: str
) -> None:
    sim = make_sim()
    token = "tok3nSECRETvalue999"
    url = sim.base_url.replace("http://", f"http://{token}@")
    run_dir = tmp_path / "run"
    args = ["run", str(_jobs(tmp_path)), "--run-dir", str(run_dir), "--yes"]
    if where == "providers":
        ep = {
            "name": "gw",
            "protocol": "openai",
            "base_url": url,
            "key_env": "KEY_A",
            "models": ["gpt-image-1"],
        }
        args += ["--providers", str(providers_file(tmp_path / "p.toml", [ep]))]
    else:
        args += [*MODEL_FLAGS, "--base-url", url]
    done = run_cli(args, env=env_with(KEY_A="sk-a-key-for-the-test-000"))
    assert done.code == 2, done.output
    assert "credentials" in done.output and "Cannot combine" not in done.output
    assert token not in done.output and token not in _everything_in(run_dir)
    assert sim.stats.received == 0


def test_a_query_secret_in_a_base_url_is_not_stored_and_resume_asks_for_the_url(
    make_sim: Any, tmp_path: Path
) -> None:
    sim = make_sim()
    secret = "c0deSECRET4242"
    url = f"{sim.base_url}?code={secret}"
    run_dir = tmp_path / "run"
    done = run_cli(
        [
            "run",
            str(_jobs(tmp_path)),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            "--base-url",
            url,
            "--yes",
            "--max-attempts",
            "1",
        ],
        env=cli_env(),
    )
    assert "Traceback" not in done.output
    assert secret not in _everything_in(run_dir)
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["settings"]["base_url"].endswith("?code=***")
    again = run_cli(["resume", str(run_dir), "--yes"], env=cli_env())
    if again.code != 0:  # a run left to do: the URL must be given again, said clearly
        assert again.code == 2 and "--base-url" in again.output, again.output


def test_a_lower_case_key_env_is_kept_in_run_json_and_resume_works(
    make_sim: Any, tmp_path: Path
) -> None:
    sim = make_sim(api_key="sk-lower-case-key-0001", faults={"server": 1.0})
    ep = {
        "name": "low",
        "protocol": "openai",
        "base_url": sim.base_url,
        "key_env": "my_openai_key",
        "models": ["gpt-image-1"],
    }
    providers = providers_file(tmp_path / "p.toml", [ep])
    run_dir = tmp_path / "run"
    env = env_with(my_openai_key="sk-lower-case-key-0001")
    first = run_cli(
        [
            "run",
            str(_jobs(tmp_path)),
            "--run-dir",
            str(run_dir),
            "--providers",
            str(providers),
            *MODEL_FLAGS,
            "--yes",
            "--max-attempts",
            "1",
        ],
        env=env,
    )
    assert first.code in (1, 3), first.output
    recorded = json.loads((run_dir / "run.json").read_text())["settings"]["endpoints"]
    assert recorded[0]["key_env"] == "my_openai_key"
    sim.update(faults={})
    resumed = run_cli(["resume", str(run_dir), "--yes", "--retry-failed"], env=env)
    assert resumed.code == 0, resumed.output
    assert len(ok_counts(run_dir)) == 3


def test_azure_accepts_deployment_as_well_as_deployments(make_sim: Any, tmp_path: Path) -> None:
    sim = make_sim(api_key="sk-azure-key-000001")
    ep = {
        "name": "azure",
        "protocol": "azure",
        "base_url": f"{sim.root_url}/openai",
        "key_env": "AZ_KEY",
        "models": ["gpt-image-1-mini"],
        "deployment": "mini-dep",
    }
    providers = providers_file(tmp_path / "p.toml", [ep])
    [spec] = load_providers(providers)
    assert spec.deployments == {"gpt-image-1-mini": "mini-dep"}
    run_dir = tmp_path / "run"
    jobs = write_text_jobs(tmp_path / "jobs.txt", ["a red kite"])
    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            "--providers",
            str(providers),
            "--model",
            "gpt-image-1-mini",
            "--size",
            "1024x1024",
            "--quality",
            "low",
            "--yes",
        ],
        env=env_with(AZ_KEY="sk-azure-key-000001"),
    )
    assert done.code == 0, done.output
    assert len(ok_counts(run_dir)) == 1
    both = providers_file(tmp_path / "b.toml", [{**ep, "deployments": {"x": "y"}}])
    with pytest.raises(Exception, match="not both"):
        load_providers(both)


def test_key_looking_names_and_url_redaction() -> None:
    from batchgen.redaction import looks_like_key, redact, redact_url

    for key in (HEX_KEY, "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv", "sk-proj-abc123def456"):
        assert looks_like_key(key), key
    for name in ("OPENAI_API_KEY", "my_openai_key", "AZURE_OPENAI_KEY_2024", "KEY_A", "k"):
        assert not looks_like_key(name), name
    assert redact("http://TOKEN123@host/v1") == "http://***@host/v1"
    assert redact_url("https://h/api?code=abc&x=1") == "https://h/api?code=***&x=***"


def test_attempts_waiting_for_an_endpoint_taken_out_by_auth_are_not_logged_as_sent(
    make_sim: Any, tmp_path: Path
) -> None:
    good = make_sim(api_key="sk-good-endpoint-0001", latency_mean=0.05)
    broke = make_sim(api_key="sk-broke-endpoint-001", fail_after={"auth": 1}, latency_mean=0.2)
    endpoints = [
        {
            "name": "a",
            "protocol": "openai",
            "base_url": good.base_url,
            "key_env": "KEY_A",
            "models": ["gpt-image-1"],
            "concurrency": 4,
            "rpm": 240,
        },
        {
            "name": "b",
            "protocol": "openai",
            "base_url": broke.base_url,
            "key_env": "KEY_B",
            "models": ["gpt-image-1"],
            "concurrency": 4,
            "rpm": 240,
        },
    ]
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"a quiet pier {i:02d}" for i in range(30)))
    run = tmp_path / "run"
    env = env_with(KEY_A="sk-good-endpoint-0001", KEY_B="sk-broke-endpoint-001")
    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run),
            "--providers",
            str(providers_file(tmp_path / "p.toml", endpoints)),
            *MODEL_FLAGS,
            "--yes",
        ],
        env=env,
    )
    assert done.code == 0, done.output
    assert len(ok_counts(run)) == 30
    t = log_table(run, ["endpoint", "status"]).to_pylist()
    b_errors = [r for r in t if r["endpoint"] == "b" and r["status"] == "error"]
    # only the 401s b really answered are rows: none for attempts that waited and went to a
    answered = broke.stats.received - broke.stats["ok"]
    assert len(b_errors) == answered, (len(b_errors), answered)
