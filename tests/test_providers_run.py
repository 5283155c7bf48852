"""Issue 15 through the real CLI: `batchgen run JOBS --providers providers.toml` over
endpoints of every protocol (the simulator serves them all), each job to an endpoint serving
its model; an endpoint taken out by auth/quota while another carries on; run.json records the
endpoints without a key; the log's `endpoint` column; the report by endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from tests.runhelpers import (
    cli_env,
    files_holding_secret,
    image_files,
    log_table,
    logged_images,
    ok_rows,
    run_cli,
    write_jsonl_jobs,
)

KEY_A, KEY_B = "sk-endpoint-A-SECRET-111111", "sk-endpoint-B-SECRET-222222"


def providers_file(path: Path, endpoints: list[dict[str, Any]]) -> Path:
    lines = []
    for ep in endpoints:
        lines.append("[[endpoint]]")
        for key, value in ep.items():
            lines.append(
                f"{key} = {json.dumps(value) if not isinstance(value, dict) else _table(value)}"
            )
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def _table(d: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in d.items()) + " }"


def env_with(**keys: str) -> dict[str, str]:
    env = cli_env(None)
    env.update(keys)
    return env


def mixed_endpoints(sim: Any) -> list[dict[str, Any]]:
    root = sim.root_url
    return [
        {
            "name": "openai-a",
            "protocol": "openai",
            "base_url": sim.base_url,
            "key_env": "KEY_A",
            "models": ["gpt-image-1"],
        },
        {
            "name": "gemini",
            "protocol": "gemini",
            "base_url": f"{root}/v1beta",
            "key_env": "KEY_A",
            "models": ["gemini-2.5-flash-image"],
        },
        {
            "name": "bfl",
            "protocol": "bfl",
            "base_url": f"{root}/bfl/v1",
            "key_env": "KEY_A",
            "models": ["flux-pro-1.1"],
            "poll_interval": 0.001,
        },
        {
            "name": "fal",
            "protocol": "fal",
            "base_url": f"{root}/fal",
            "key_env": "KEY_A",
            "models": ["fal-ai/flux/dev"],
            "poll_interval": 0.001,
        },
        {
            "name": "azure",
            "protocol": "azure",
            "base_url": f"{root}/openai",
            "key_env": "KEY_A",
            "models": ["gpt-image-1-mini"],
            "deployments": {"gpt-image-1-mini": "mini-dep"},
        },
    ]


def test_a_mixed_job_file_runs_through_one_providers_file(make_sim: Any, tmp_path: Path) -> None:
    sim = make_sim(api_key=KEY_A)
    models = [
        "gpt-image-1",
        "gemini-2.5-flash-image",
        "flux-pro-1.1",
        "fal-ai/flux/dev",
        "gpt-image-1-mini",
    ]
    jobs = [
        {
            "id": f"j{i}",
            "prompt": f"picture {i}",
            "model": models[i % 5],
            "size": "1024x1024",
            "quality": "low",
        }
        for i in range(20)
    ]
    jobs.append(
        {
            "id": "refused",
            "prompt": "[sim:content_policy] no",
            "model": "flux-pro-1.1",
            "size": "1024x1024",
        }
    )
    job_file = write_jsonl_jobs(tmp_path / "jobs.jsonl", jobs)
    providers = providers_file(tmp_path / "providers.toml", mixed_endpoints(sim))
    run = tmp_path / "run"
    done = run_cli(
        [
            "run",
            str(job_file),
            "--run-dir",
            str(run),
            "--providers",
            str(providers),
            "--yes",
            "--max-attempts",
            "2",
        ],
        env=env_with(KEY_A=KEY_A),
    )
    assert done.code == 1, done.output  # one job refused for good
    ok = ok_rows(run)
    assert ok.num_rows == 20
    # images on disk == ok rows
    logged = set(logged_images(run))
    assert image_files(run) == logged and len(logged) == 20
    table = log_table(run, ["job_id", "model", "endpoint", "status", "error_class"])
    by_model = {m: set() for m in models}
    for row in table.to_pylist():
        by_model[row["model"]].add(row["endpoint"])
    assert by_model == {
        "gpt-image-1": {"openai-a"},
        "gemini-2.5-flash-image": {"gemini"},
        "flux-pro-1.1": {"bfl"},
        "fal-ai/flux/dev": {"fal"},
        "gpt-image-1-mini": {"azure"},
    }
    refused = [r for r in table.to_pylist() if r["job_id"] == "refused"]
    assert [r["error_class"] for r in refused] == ["content_policy"]
    manifest = json.loads((run / "run.json").read_text())
    recorded = manifest["settings"]["endpoints"]
    assert [e["name"] for e in recorded] == ["openai-a", "gemini", "bfl", "fal", "azure"]
    assert {e["key_env"] for e in recorded} == {"KEY_A"}
    summary = manifest["sessions"][-1]["summary"]
    assert set(summary["endpoints"]) == {"openai-a", "gemini", "bfl", "fal", "azure"}
    assert "rpm" in summary["endpoints"]["openai-a"]["autopilot"]
    assert files_holding_secret(run, KEY_A) == []
    assert KEY_A not in done.output
    report = run_cli(["report", str(run)], env=env_with())
    assert report.code == 0, report.output
    assert "endpoint" in report.stdout.lower() and "gemini" in report.stdout


def test_an_endpoint_out_of_quota_is_taken_out_and_the_other_carries_on(
    make_sim: Any, tmp_path: Path
) -> None:
    good, broke = make_sim(api_key=KEY_A), make_sim(api_key=KEY_B, fail_after={"quota": 2})
    endpoints = [
        {
            "name": "a",
            "protocol": "openai",
            "base_url": good.base_url,
            "key_env": "KEY_A",
            "models": ["gpt-image-1"],
        },
        {
            "name": "b",
            "protocol": "openai",
            "base_url": broke.base_url,
            "key_env": "KEY_B",
            "models": ["gpt-image-1"],
        },
    ]
    jobs = [
        {
            "id": f"j{i}",
            "prompt": f"p {i}",
            "model": "gpt-image-1",
            "size": "1024x1024",
            "quality": "low",
        }
        for i in range(60)
    ]
    job_file = write_jsonl_jobs(tmp_path / "jobs.jsonl", jobs)
    providers = providers_file(tmp_path / "providers.toml", endpoints)
    run = tmp_path / "run"
    done = run_cli(
        ["run", str(job_file), "--run-dir", str(run), "--providers", str(providers), "--yes"],
        env=env_with(KEY_A=KEY_A, KEY_B=KEY_B),
    )
    assert done.code == 0, done.output  # every job done: b's refused ones went to a
    assert ok_rows(run).num_rows == 60
    table = log_table(run, ["endpoint", "status", "error_class"])
    quota = table.filter(pc.equal(table["error_class"], "quota"))
    assert quota.num_rows >= 1 and set(quota["endpoint"].to_pylist()) == {"b"}
    assert broke.stats["ok"] == 2
    summary = json.loads((run / "run.json").read_text())["sessions"][-1]["summary"]
    assert summary["endpoints"]["b"]["taken_out"]["class"] == "quota"
    assert summary["endpoints"]["a"]["taken_out"] is None
    assert files_holding_secret(run, KEY_B) == [] and files_holding_secret(run, KEY_A) == []


def test_the_run_stops_when_no_endpoint_is_left(make_sim: Any, tmp_path: Path) -> None:
    sim = make_sim(api_key=KEY_A, fail_after={"auth": 1})
    endpoints = [
        {
            "name": "only",
            "protocol": "openai",
            "base_url": sim.base_url,
            "key_env": "KEY_A",
            "models": ["gpt-image-1"],
        }
    ]
    jobs = [
        {
            "id": f"j{i}",
            "prompt": f"p {i}",
            "model": "gpt-image-1",
            "size": "1024x1024",
            "quality": "low",
        }
        for i in range(30)
    ]
    job_file = write_jsonl_jobs(tmp_path / "jobs.jsonl", jobs)
    providers = providers_file(tmp_path / "providers.toml", endpoints)
    run = tmp_path / "run"
    done = run_cli(
        [
            "run",
            str(job_file),
            "--run-dir",
            str(run),
            "--providers",
            str(providers),
            "--yes",
            "--concurrency",
            "2",
        ],
        env=env_with(KEY_A=KEY_A),
    )
    assert done.code == 3, done.output
    assert "stopped (auth)" in done.stdout
    assert ok_rows(run).num_rows < 30


def test_a_model_no_endpoint_serves_is_refused_before_sending(
    make_sim: Any, tmp_path: Path
) -> None:
    sim = make_sim()
    endpoints = [
        {
            "name": "a",
            "protocol": "openai",
            "base_url": sim.base_url,
            "key_env": "KEY_A",
            "models": ["gpt-image-1"],
        }
    ]
    job_file = write_jsonl_jobs(
        tmp_path / "jobs.jsonl", [{"id": "x", "prompt": "p", "model": "flux-pro-1.1"}]
    )
    providers = providers_file(tmp_path / "providers.toml", endpoints)
    done = run_cli(
        [
            "run",
            str(job_file),
            "--run-dir",
            str(tmp_path / "run"),
            "--providers",
            str(providers),
            "--yes",
        ],
        env=env_with(KEY_A=KEY_A),
    )
    assert done.code == 2 and "flux-pro-1.1" in done.output, done.output
    assert sim.stats.received == 0


def test_a_providers_file_holding_a_key_or_a_password_url_is_refused(tmp_path: Path) -> None:
    from batchgen.cli.common import UsageError
    from batchgen.provider.endpoints import load_providers

    for bad, needle in (
        ({"key_env": "sk-live-abcdef123456789"}, "key_env"),
        ({"base_url": "https://user:hunter2pass@api.example.com/v1"}, "password"),
        ({"protocol": "midjourney"}, "protocol"),
        ({"models": []}, "models"),
    ):
        ep = {"name": "a", "protocol": "openai", "key_env": "K", "models": ["gpt-image-1"], **bad}
        path = providers_file(tmp_path / "p.toml", [ep])
        try:
            load_providers(path)
        except UsageError as exc:
            assert needle in str(exc) and "abcdef123456789" not in str(exc)
            assert "hunter2pass" not in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_two_endpoints_of_600_rpm_sustain_about_1200_together(
    make_sim: Any, tmp_path: Path
) -> None:
    """Each endpoint has its own limiter: two keys of 600 rpm (each sim enforces it) carry
    about twice what one does. Library level (run_pool + Router), ~7 s of real traffic."""
    import anyio

    from batchgen.config import PoolConfig
    from batchgen.jobs.model import Job
    from batchgen.provider.endpoints import EndpointSpec, build_router
    from batchgen.runner.control import PoolSettings, RowContext
    from batchgen.runner.pool import run_pool

    sims = [make_sim(rpm=600, burst_s=0.2), make_sim(rpm=600, burst_s=0.2)]
    specs = [
        EndpointSpec(f"e{i}", "openai", s.base_url, "NO_SUCH_KEY_VAR", ("gpt-image-1",), rpm=600.0)
        for i, s in enumerate(sims)
    ]
    pool = PoolConfig.build(None, {"concurrency": 16})
    jobs = [
        Job.make(
            f"j{i}",
            i + 1,
            {
                "prompt": f"p{i}",
                "model": "gpt-image-1",
                "n": 1,
                "size": "1024x1024",
                "quality": "low",
            },
        )
        for i in range(140)
    ]
    rows: list[dict[str, Any]] = []

    async def main() -> float:
        router = build_router(specs, {"e0": "k", "e1": "k"}, pool, None)
        t0 = anyio.current_time()
        try:
            await run_pool(
                jobs,
                router,
                router.gate,
                rows,
                context=RowContext("r", 1, "providers", tmp_path),
                settings=PoolSettings(concurrency=router.gate.concurrency_cap, timeout=10.0),
            )
        finally:
            for ep in router.endpoints:
                await ep.provider.aclose()
        return anyio.current_time() - t0

    elapsed = anyio.run(main)
    ok = [r for r in rows if r.get("status") == "ok"]
    assert len(ok) == 140
    per = {e: sum(1 for r in ok if r["endpoint"] == e) for e in ("e0", "e1")}
    assert min(per.values()) >= 50, per  # spread across both
    rpm = 60.0 * len(ok) / elapsed
    # one endpoint cannot pass 600 (its sim refuses more); together ≈ 1,200
    assert rpm > 900, f"{rpm:.0f} rpm over {elapsed:.1f}s, split {per}"
    print(f"two endpoints: {rpm:.0f} rpm over {elapsed:.1f}s, split {per}")


def test_a_model_whose_only_endpoint_is_out_stays_pending_and_resume_finishes_it(
    make_sim: Any, tmp_path: Path
) -> None:
    openai_sim, gemini_sim = make_sim(), make_sim(fail_after={"quota": 1})
    endpoints = [
        {
            "name": "o",
            "protocol": "openai",
            "base_url": openai_sim.base_url,
            "key_env": "KEY_A",
            "models": ["gpt-image-1"],
        },
        {
            "name": "g",
            "protocol": "gemini",
            "base_url": f"{gemini_sim.root_url}/v1beta",
            "key_env": "KEY_B",
            "models": ["gemini-2.5-flash-image"],
        },
    ]
    jobs = [
        {
            "id": f"j{i}",
            "prompt": f"p {i}",
            "size": "1024x1024",
            "model": "gpt-image-1" if i % 2 else "gemini-2.5-flash-image",
        }
        for i in range(20)
    ]
    job_file = write_jsonl_jobs(tmp_path / "jobs.jsonl", jobs)
    providers = providers_file(tmp_path / "providers.toml", endpoints)
    run = tmp_path / "run"
    env = env_with(KEY_A=KEY_A, KEY_B=KEY_B)
    done = run_cli(
        [
            "run",
            str(job_file),
            "--run-dir",
            str(run),
            "--providers",
            str(providers),
            "--yes",
            "--concurrency",
            "2",
        ],
        env=env,
    )
    assert done.code == 3 and "stopped (quota)" in done.stdout, done.output
    table = log_table(run, ["job_id", "model", "status"])
    ok = [r for r in table.to_pylist() if r["status"] == "ok"]
    # every OpenAI job went on after the Gemini endpoint was taken out
    assert {r["job_id"] for r in ok if r["model"] == "gpt-image-1"} == {
        f"j{i}" for i in range(1, 20, 2)
    }
    assert sum(1 for r in ok if r["model"] != "gpt-image-1") == 1
    gemini_sim.update(fail_after={})
    gemini_sim.reset()
    again = run_cli(["resume", str(run), "--yes"], env=env)  # endpoints from run.json
    assert again.code == 0, again.output
    assert ok_rows(run).num_rows == 20 and len(image_files(run)) == 20
