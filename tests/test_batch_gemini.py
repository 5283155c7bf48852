"""``--via batch`` on a ``gemini`` endpoint (issue 26 point 5): the real CLI in a subprocess,
a providers file with one Gemini endpoint, the simulator's Gemini Batch and Files APIs over
HTTP (Google's shapes: batchGenerateContent, Operations, inlinedResponses / responsesFile).

The simulator's counters per key (``submitted``, ``billed``) are the ground truth for "never
submitted twice, never paid twice"; its batch clock is compressed (``batch_seconds``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from tests.runhelpers import (
    check_log_readable,
    cli_env,
    files_holding_secret,
    image_files,
    job_ids_by_prompt,
    log_table,
    logged_images,
    ok_counts,
    run_cli,
    secret_in_log,
    write_text_jobs,
)
from tests.test_batch import POLL, batch_stats
from tests.test_providers_run import providers_file

pytestmark = pytest.mark.timeout(120)

KEY = "gk-gemini-SECRET-3141592653"
MODEL = "gemini-2.5-flash-image"
LIVE_PER_IMAGE = 0.039  # batchgen/data/prices.toml, the live rate


def _env(crash_at: str | None = None) -> dict[str, str]:
    env = cli_env(None, crash_at=crash_at)
    env["GEMINI_KEY"] = KEY
    return env


def _setup(tmp: Path, sim: Any, n: int, prompt: str = "a gull over the pier") -> tuple[Path, Path]:
    providers = providers_file(tmp / "providers.toml", [
        {"name": "gemini", "protocol": "gemini", "base_url": f"{sim.root_url}/v1beta",
         "key_env": "GEMINI_KEY", "models": [MODEL]},
    ])  # fmt: skip
    jobs = write_text_jobs(tmp / "jobs.txt", (f"{prompt} {i:04d}" for i in range(n)))
    return providers, jobs


def _run(jobs: Path, providers: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["run", str(jobs), "--run-dir", str(run_dir), "--providers", str(providers),
            "--model", MODEL, "--size", "1024x1024", "--via", "batch", *POLL, "--yes",
            *extra]  # fmt: skip


def _once_each(run_dir: Path, sim: Any, n: int) -> None:
    counts = ok_counts(run_dir)
    assert len(counts) == n and set(counts.values()) == {1}
    assert sorted(counts) == sorted(job_ids_by_prompt(run_dir).values())
    logged = logged_images(run_dir)
    assert len(logged) == len(set(logged)) == n and image_files(run_dir) == set(logged)
    assert set(batch_stats(sim)["billed"].values()) == {1}
    check_log_readable(run_dir)
    assert files_holding_secret(run_dir, KEY) == [] and not secret_in_log(run_dir, KEY)


def _batch_cost(run_dir: Path) -> tuple[float, set[str]]:
    log = log_table(run_dir, ["status", "cost_usd", "cost_source", "provider_batch_id"])
    ok = log.filter(pc.equal(log["status"], "ok"))
    ok = ok.filter(pc.is_valid(ok["provider_batch_id"]))
    return float(pc.sum(ok["cost_usd"]).as_py() or 0.0), set(ok["cost_source"].to_pylist())


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "files-api"])
def test_gemini_batch_runs_every_job_once_at_half_the_live_price(
    tmp_path: Path, make_sim: Any, inline: bool
) -> None:
    sim = make_sim(batch_seconds=0.4, api_key=KEY)
    providers, jobs = _setup(tmp_path, sim, 60)
    run_dir = tmp_path / "run"
    env = _env()
    if not inline:  # a part over the inline limit goes through the Files API
        env["BATCHGEN_GEMINI_INLINE_MAX_BYTES"] = "1000"
    done = run_cli(_run(jobs, providers, run_dir, "--batch-max-requests", "25"), env=env)
    assert done.code == 0, done.output
    stats = batch_stats(sim)
    assert stats["batches_created"] == 3 and stats["statuses"] == {"completed": 3}
    assert stats["files_uploaded"] == (0 if inline else 3)
    assert set(stats["submitted"].values()) == {1} and len(stats["submitted"]) == 60
    _once_each(run_dir, sim, 60)
    spent, sources = _batch_cost(run_dir)
    assert math.isclose(spent, 60 * LIVE_PER_IMAGE / 2, rel_tol=1e-9), spent
    assert sources == {"price-table"}
    state = json.loads((run_dir / "state" / "batches.json").read_text())
    assert all(p["batch_id"].startswith("batches/") for p in state["parts"])
    log = log_table(run_dir, ["provider"])
    assert set(log["provider"].to_pylist()) == {"gemini"}
