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

from batchgen import faultpoints
from tests.runhelpers import (
    Cli,
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
    wait_until,
    write_text_jobs,
)
from tests.test_batch import POLL, batch_stats
from tests.test_providers_run import providers_file

pytestmark = pytest.mark.timeout(120)

KEY = "gk-gemini-SECRET-3141592653"
MODEL = "gemini-2.5-flash-image"
LIVE_PER_IMAGE = 0.039  # batchgen/data/prices.toml, the live rate


def _env(crash_at: str | None = None, ledger: Path | None = None) -> dict[str, str]:
    env = cli_env(None, crash_at=crash_at)
    env["GEMINI_KEY"] = KEY
    if ledger is not None:
        env["BATCHGEN_LEDGER"] = str(ledger)
    return env


def _setup(tmp: Path, sim: Any, n: int, prompt: str = "a gull over the pier") -> tuple[Path, Path]:
    providers = providers_file(
        tmp / "providers.toml",
        [
            {
                "name": "gemini",
                "protocol": "gemini",
                "base_url": f"{sim.root_url}/v1beta",
                "key_env": "GEMINI_KEY",
                "models": [MODEL],
            },
        ],
    )
    jobs = write_text_jobs(tmp / "jobs.txt", (f"{prompt} {i:04d}" for i in range(n)))
    return providers, jobs


def _run(jobs: Path, providers: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "run",
        str(jobs),
        "--run-dir",
        str(run_dir),
        "--providers",
        str(providers),
        "--model",
        MODEL,
        "--size",
        "1024x1024",
        "--via",
        "batch",
        *POLL,
        "--yes",
        *extra,
    ]


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
    assert not list((run_dir / "state" / "batch").glob("*.jsonl"))  # inputs, converted: gone
    log = log_table(run_dir, ["provider"])
    assert set(log["provider"].to_pylist()) == {"gemini"}


@pytest.mark.parametrize(
    ("crash_at", "files_api"),
    [
        # the generic points (the OpenAI tests cover their logic) in `make test-slow`
        pytest.param("batch:after_intent:2", False, marks=pytest.mark.slow),
        ("batch:after_upload:2", True),  # uploaded through the Files API, its name not recorded
        ("batch:after_create:2", False),  # created, its name not recorded: found by display name
        pytest.param("batch:poll:3", False, marks=pytest.mark.slow),
        ("batch:collect_line:30", True),  # an image saved, its row not appended
    ],
)
def test_a_crash_anywhere_then_resume_sends_every_gemini_job_once(
    tmp_path: Path, make_sim: Any, crash_at: str, files_api: bool
) -> None:
    sim = make_sim(batch_seconds=0.3, api_key=KEY)
    providers, jobs = _setup(tmp_path, sim, 60)
    run_dir = tmp_path / "run"
    env = _env(crash_at)
    if files_api:
        env["BATCHGEN_GEMINI_INLINE_MAX_BYTES"] = "1000"
    crashed = run_cli(
        _run(jobs, providers, run_dir, "--batch-max-requests", "25", "--quiet"), env=env
    )
    assert crashed.code == faultpoints.EXIT_CODE, crashed.output
    env = _env()
    if files_api:
        env["BATCHGEN_GEMINI_INLINE_MAX_BYTES"] = "1000"
    resumed = run_cli(["resume", str(run_dir), *POLL, "--yes", "--quiet"], env=env)
    assert resumed.code == 0, resumed.output
    stats = batch_stats(sim)
    assert stats["batches_created"] == 3, stats  # never a batch twice
    assert stats["files_uploaded"] == (3 if files_api else 0), stats
    assert set(stats["submitted"].values()) == {1} and len(stats["submitted"]) == 60
    _once_each(run_dir, sim, 60)
    assert log_table(run_dir, ["job_id"]).num_rows == 60  # no duplicate rows


def test_kill_9_while_following_then_collect_reattaches_to_the_gemini_batches(
    tmp_path: Path, make_sim: Any
) -> None:
    sim = make_sim(batch_seconds=3.0, api_key=KEY)
    providers, jobs = _setup(tmp_path, sim, 40)
    run_dir = tmp_path / "run"
    cli = Cli(_run(jobs, providers, run_dir, "--batch-max-requests", "20", "--quiet"), env=_env())
    wait_until(lambda: batch_stats(sim)["batches_created"] == 2, what="2 batches", cli=cli)
    assert cli.kill_hard().code == -9
    collected = run_cli(["collect", str(run_dir), *POLL, "--quiet"], env=_env())
    assert collected.code == 0, collected.output
    assert batch_stats(sim)["batches_created"] == 2
    _once_each(run_dir, sim, 40)


def test_an_expired_gemini_batch_leaves_its_rest_to_resume_via_live(
    tmp_path: Path, make_sim: Any
) -> None:
    # batch 2 expires half-way: its first half was run (and billed), the rest never ran
    sim = make_sim(batch_seconds=0.4, api_key=KEY, batch_faults="expire=2")
    providers, jobs = _setup(tmp_path, sim, 40)
    run_dir = tmp_path / "run"
    ledger = tmp_path / "ledger.sqlite"
    first = run_cli(
        _run(jobs, providers, run_dir, "--batch-max-requests", "20", "--quiet"),
        env=_env(ledger=ledger),
    )
    assert first.code == 3, first.output
    assert "pending" in first.stdout and "batchgen resume" in first.stdout
    billed = set(batch_stats(sim)["billed"])
    assert len(billed) == 30  # batch 1 whole, half of batch 2
    assert sim.stats.snapshot(timeline=False)["by_prompt"] == {}  # nothing live yet
    batch_spent, _ = _batch_cost(run_dir)
    assert math.isclose(batch_spent, 30 * LIVE_PER_IMAGE / 2, rel_tol=1e-9)

    resumed = run_cli(
        ["resume", str(run_dir), *POLL, "--yes", "--quiet", "--via", "live"],
        env=_env(ledger=ledger),
    )
    assert resumed.code == 0, resumed.output
    by_prompt = job_ids_by_prompt(run_dir)
    live = {by_prompt[p] for p in sim.stats.snapshot(timeline=False)["by_prompt"]}
    assert len(live) == 10 and not live & billed  # exactly the expired rest, live
    assert batch_stats(sim)["billed"] == dict.fromkeys(billed, 1)  # no batch line again
    counts = ok_counts(run_dir)
    assert len(counts) == 40 and set(counts.values()) == {1}
    log = log_table(run_dir, ["status", "cost_usd", "provider_batch_id"])
    ok = log.filter(pc.equal(log["status"], "ok"))
    live_rows = ok.filter(pc.is_null(ok["provider_batch_id"]))
    assert live_rows.num_rows == 10
    assert math.isclose(pc.sum(live_rows["cost_usd"]).as_py(), 10 * LIVE_PER_IMAGE, rel_tol=1e-9)
    assert image_files(run_dir) == set(logged_images(run_dir))
    # the ledger holds what the log holds: 30 images at the batch rate, 10 at the live one
    spend = run_cli(["spend", "--by", "model", "--format", "json"], env=_env(ledger=ledger))
    assert spend.code == 0, spend.output
    lines = {line["key"]: line for line in json.loads(spend.stdout)["lines"]}
    assert lines[MODEL]["images"] == 40
    want = 30 * LIVE_PER_IMAGE / 2 + 10 * LIVE_PER_IMAGE
    assert math.isclose(lines[MODEL]["cost_usd"], want, rel_tol=1e-9)
    assert math.isclose(pc.sum(log["cost_usd"]).as_py(), want, rel_tol=1e-9)
    assert KEY.encode() not in ledger.read_bytes()


def test_gemini_errored_and_blocked_answers_keep_their_class(tmp_path: Path, make_sim: Any) -> None:
    sim = make_sim(batch_seconds=0.2, api_key=KEY)
    providers, _ = _setup(tmp_path, sim, 0)
    prompts = [f"a rocky cove {i:02d}" for i in range(12)]
    prompts[3] = "[sim:content_policy] a rocky cove 03"  # blocked: IMAGE_SAFETY, no image
    prompts[7] = "[sim:server*1] a rocky cove 07"  # an INTERNAL error Status, once
    jobs = write_text_jobs(tmp_path / "jobs.txt", prompts)
    run_dir = tmp_path / "run"
    first = run_cli(_run(jobs, providers, run_dir, "--quiet"), env=_env())
    assert first.code == 3, first.output  # one job left pending (the server error)
    by_prompt = job_ids_by_prompt(run_dir)
    log = log_table(run_dir, ["job_id", "status", "error_class", "cost_usd"])
    errors = log.filter(pc.equal(log["status"], "error"))
    assert dict(
        zip(errors["job_id"].to_pylist(), errors["error_class"].to_pylist(), strict=True)
    ) == {by_prompt[prompts[3]]: "content_policy", by_prompt[prompts[7]]: "server"}
    assert pc.sum(errors["cost_usd"]).as_py() == 0
    resumed = run_cli(["resume", str(run_dir), *POLL, "--yes", "--quiet"], env=_env())
    assert resumed.code == 1, resumed.output  # the blocked prompt fails for good
    counts = ok_counts(run_dir)
    assert len(counts) == 11 and by_prompt[prompts[3]] not in counts
    assert batch_stats(sim)["submitted"][by_prompt[prompts[7]]] == 2


def test_deadline_cancels_a_slow_gemini_batch_and_finishes_the_rest_live_paying_once(
    tmp_path: Path, make_sim: Any
) -> None:
    sim = make_sim(batch_seconds=20.0, api_key=KEY)  # far slower than the deadline
    providers, jobs = _setup(tmp_path, sim, 40)
    run_dir = tmp_path / "run"
    args = ["--deadline", "5s", "--assume-latency", "0.01", "--concurrency", "8"]
    done = run_cli(_run(jobs, providers, run_dir, *args), env=_env())
    assert done.code == 0, done.output
    assert "deadline" in done.stdout
    stats = batch_stats(sim)
    assert stats["cancels"] == 1 and stats["statuses"] == {"cancelled": 1}
    by_prompt = job_ids_by_prompt(run_dir)
    live = {by_prompt[p] for p in sim.stats.snapshot(timeline=False)["by_prompt"]}
    batch = set(stats["billed"])  # the cancelled batch's partial answers, collected first
    assert live and not batch & live and batch | live == set(by_prompt.values())
    _once_each(run_dir, sim, 40)


def test_cancel_command_cancels_open_gemini_batches_and_resume_finishes_the_rest(
    tmp_path: Path, make_sim: Any
) -> None:
    sim = make_sim(batch_seconds=20.0, api_key=KEY)
    providers, _ = _setup(tmp_path, sim, 0)
    other = tmp_path / "other"
    jobs2 = write_text_jobs(tmp_path / "more.txt", (f"a dune {i:02d}" for i in range(20)))
    detached = run_cli(
        _run(jobs2, providers, other, "--detach", "--batch-max-requests", "10"), env=_env()
    )
    assert detached.code == 0, detached.output
    cancelled = run_cli(["cancel", str(other)], env=_env())
    assert cancelled.code == 0, cancelled.output
    assert "cancelled 2 batch(es)" in cancelled.stdout
    assert batch_stats(sim)["cancels"] == 2
    sim.update(batch_seconds=0.3)
    resumed = run_cli(["resume", str(other), *POLL, "--yes", "--quiet"], env=_env())
    assert resumed.code == 0, resumed.output
    assert len(ok_counts(other)) == 20 and set(ok_counts(other).values()) == {1}
    assert KEY not in cancelled.output + resumed.output


def test_gemini_operation_and_answers_translate_into_the_batch_codes_shapes() -> None:
    from batchgen.batch.geminishapes import (
        batch_of,
        converted,
        display_name,
        metadata_of,
        output_line,
    )
    from batchgen.batch.lines import LongLine

    meta = {"batchgen_run": "r-2026 x", "part": "3"}
    assert metadata_of(display_name(meta)) == meta and metadata_of("someone else's") is None
    op = {
        "name": "batches/b1",
        "done": True,
        "metadata": {
            "displayName": display_name(meta),
            "state": "BATCH_STATE_EXPIRED",
            "createTime": "2026-12-07T05:00:00.5Z",
            "batchStats": {
                "requestCount": "10",
                "successfulRequestCount": "4",
                "failedRequestCount": True,
            },
        },
        "response": {"responsesFile": "files/out1"},
    }
    batch = batch_of(op)
    assert batch["status"] == "expired" and batch["metadata"] == meta
    assert batch["request_counts"] == {"total": 10, "completed": 4, "failed": 0}
    assert batch["output_file_id"] == "files/out1" and batch["created_at"] == 1796619600
    assert batch_of({"name": "batches/b2", "metadata": {"state": "??"}})["status"] is None
    assert batch_of("not an object") == {}

    ok = json.loads(
        output_line(
            "job-1",
            {
                "candidates": [
                    {
                        "content": {
                            "parts": [
                                {"text": "here"},
                                {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
                            ]
                        }
                    }
                ],
                "responseId": "r1",
            },
            None,
        )
    )
    assert ok["custom_id"] == "job-1" and ok["response"]["status_code"] == 200
    assert ok["response"]["body"]["data"] == [{"b64_json": "iVBO"}]
    blocked = json.loads(output_line("job-2", {"promptFeedback": {"blockReason": "SAFETY"}}, None))
    assert blocked["response"]["status_code"] == 400
    assert blocked["response"]["body"]["error"]["code"] == "content_policy_violation"
    failed = json.loads(output_line("job-3", None, {"code": 8, "message": "quota"}))
    assert failed["response"]["status_code"] == 429
    not_run = json.loads(output_line("job-4", None, {"code": 1, "message": "cancelled"}))
    assert not_run["response"] is None and not_run["error"]["code"] == "batch_cancelled"
    # a responses-file line over the line cap still names its job (logged, not lost)
    long = converted(LongLine(b'{"key": "job-5", "response": {"candidates": [', 2 << 30, 1 << 30))
    assert isinstance(long, LongLine) and long.custom_id == "job-5"
    line = converted(bytearray(b'{"key": "job-6", "error": {"code": 13, "message": "x"}}'))
    assert json.loads(line)["response"]["status_code"] == 500


def test_gemini_batch_refuses_mixed_models_and_several_endpoints_before_sending(
    tmp_path: Path, make_sim: Any
) -> None:
    sim = make_sim(api_key=KEY)
    both = {
        "name": "g",
        "protocol": "gemini",
        "base_url": f"{sim.root_url}/v1beta",
        "key_env": "GEMINI_KEY",
        "models": [MODEL, "gemini-2.5-flash-image-preview"],
    }
    providers = providers_file(tmp_path / "one.toml", [both])
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        "".join(
            json.dumps({"prompt": f"a heron {i}", "model": model}) + "\n"
            for i, model in enumerate([MODEL, "gemini-2.5-flash-image-preview"])
        )
    )
    two = providers_file(
        tmp_path / "two.toml",
        [
            both,
            {
                "name": "o",
                "protocol": "openai",
                "base_url": sim.base_url,
                "key_env": "GEMINI_KEY",
                "models": ["gpt-image-1"],
            },
        ],
    )
    for file, jobs, want in (
        (two, mixed, "one endpoint with a Batch API"),
        (providers, mixed, "a Gemini batch runs one model"),
    ):
        refused = run_cli(
            [
                "run",
                str(jobs),
                "--run-dir",
                str(tmp_path / "r"),
                "--providers",
                str(file),
                "--via",
                "batch",
                "--yes",
            ],
            env=_env(),
        )
        assert refused.code == 2, refused.output
        assert want in refused.output and "Traceback" not in refused.output
    assert batch_stats(sim)["batches_created"] == 0


def test_a_wrong_gemini_key_stops_the_batch_run_naming_no_key(
    tmp_path: Path, make_sim: Any
) -> None:
    sim = make_sim(api_key=KEY)
    providers, jobs = _setup(tmp_path, sim, 5)
    env = _env()
    env["GEMINI_KEY"] = wrong = "gk-WRONG-key-2718281828"
    run_dir = tmp_path / "run"
    stopped = run_cli(_run(jobs, providers, run_dir), env=env)
    assert stopped.code == 3, stopped.output
    assert "API key not valid" in stopped.output and "Traceback" not in stopped.output
    assert wrong not in stopped.output and files_holding_secret(run_dir, wrong) == []
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["sessions"][-1]["how"] == "stopped_auth"
    assert batch_stats(sim)["batches_created"] == 0
