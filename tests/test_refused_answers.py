"""Issue 22: images sent as ``data:`` URLs are decoded (fal's sync_mode, gateways), and a
delivered answer the client refuses is final for its job — never generated (and billed) again,
neither by the retry policy nor by resume. Counted at the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from tests.runhelpers import cli_env, log_table, run_cli, write_jsonl_jobs
from tests.test_providers_run import mixed_endpoints, providers_file

KEY = "sk-refused-answers-SECRET-1234"
MODELS = {
    "openai": "gpt-image-1",
    "gemini": "gemini-2.5-flash-image",
    "bfl": "flux-pro-1.1",
    "fal": "fal-ai/flux/dev",
}


def _run(tmp_path: Path, sim: Any, jobs: list[dict[str, Any]], *extra: str) -> tuple[Any, Path]:
    job_file = write_jsonl_jobs(tmp_path / "jobs.jsonl", jobs)
    providers = providers_file(tmp_path / "providers.toml", mixed_endpoints(sim))
    run = tmp_path / "run"
    env = cli_env(None)
    env["KEY_A"] = KEY
    args = ["run", str(job_file), "--run-dir", str(run), "--providers", str(providers), "--yes"]
    return run_cli([*args, *extra], env=env), run


def test_fal_gemini_bfl_and_openai_answers_carrying_data_urls_save_their_images(
    make_sim: Any, tmp_path: Path
) -> None:
    sim = make_sim(api_key=KEY)
    jobs = [
        {
            "id": name,
            "prompt": f"[sim:data_url] a lighthouse for {name}",
            "model": model,
            "size": "1024x1024",
            "quality": "low",
        }
        for name, model in MODELS.items()
    ]
    done, run = _run(tmp_path, sim, jobs)
    assert done.code == 0, done.output
    rows = log_table(run).to_pylist()
    assert {r["job_id"] for r in rows if r["status"] == "ok"} == set(MODELS)
    assert all(r["status"] == "ok" for r in rows)  # no refusal, no retry
    for r in rows:
        (path,) = r["image_paths"]
        with Image.open(run / path) as im:
            im.load()
            assert im.size[0] > 0
    # one generation per job
    assert all(sim.stats.by_prompt[j["prompt"]] == 1 for j in jobs)


def test_a_refused_delivered_answer_is_generated_once_and_not_resent_by_resume(
    make_sim: Any, tmp_path: Path
) -> None:
    """bad base64 / not an image: delivered, billed, refused — exactly one generation, the
    job failed for good (resume leaves it); a body cut on its way is still retried."""
    sim = make_sim(api_key=KEY)
    jobs = [
        {"id": "b64", "prompt": "a fox [sim:bad_base64]", "model": MODELS["openai"]},
        {"id": "notimg", "prompt": "a hen [sim:not_image]", "model": MODELS["openai"]},
        {"id": "gem", "prompt": "an owl [sim:not_image]", "model": MODELS["gemini"]},
        {"id": "fal", "prompt": "a cow [sim:not_image]", "model": MODELS["fal"]},
        {"id": "bfl", "prompt": "a pig [sim:not_image]", "model": MODELS["bfl"]},
        {"id": "cut", "prompt": "a yak [sim:truncated_json*1]", "model": MODELS["openai"]},
    ]
    for j in jobs:
        j.update(size="1024x1024", quality="low")
    done, run = _run(tmp_path, sim, jobs, "--max-attempts", "5")
    assert done.code == 1, done.output  # five jobs failed for good
    refused = [j for j in jobs if j["id"] != "cut"]
    assert [sim.stats.by_prompt[j["prompt"]] for j in refused] == [1] * 5
    rows = log_table(run).to_pylist()
    for r in (r for r in rows if r["job_id"] != "cut"):
        assert (r["status"], r["error_class"], r["final"]) == ("error", "invalid_response", True)
        assert r["error_code"] == "answer_refused"
    # a body that did not arrive whole is not a refusal of the answer: retried, then ok
    assert sim.stats.by_prompt["a yak [sim:truncated_json*1]"] == 2
    assert [r["status"] for r in rows if r["job_id"] == "cut"] == ["error", "ok"]

    env = cli_env(None)
    env["KEY_A"] = KEY
    again = run_cli(["resume", str(run), "--yes"], env=env)
    assert again.code == 0 and "5 failed for good" in again.output, again.output
    assert [sim.stats.by_prompt[j["prompt"]] for j in refused] == [1] * 5  # not sent again


def test_data_urls_decode_and_a_malformed_one_is_a_final_refusal() -> None:
    import base64

    from batchgen.errors import AttemptError, ErrorClass
    from batchgen.provider.http import data_url_bytes, is_data_url

    def invalid(msg: str, *, final: bool = True) -> AttemptError:
        return AttemptError(ErrorClass.INVALID_RESPONSE, msg, final=final)

    png = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
    b64 = base64.b64encode(png).decode()
    assert is_data_url("DATA:image/png;base64,xx") and not is_data_url("https://x/data:")
    wrapped = "data:image/png;base64," + "\n".join(b64[i : i + 10] for i in range(0, len(b64), 10))
    assert data_url_bytes(wrapped, "w", invalid) == png
    assert data_url_bytes("data:image/png;BASE64," + b64, "w", invalid) == png
    assert data_url_bytes("data:image/svg+xml,%3Csvg%2F%3E", "w", invalid) == b"<svg/>"
    for bad, says in [
        ("data:image/png;base64" + b64, "without a comma"),
        ("data:image/png;base64," + b64[:-3] + "%%", "not valid"),
    ]:
        try:
            data_url_bytes(bad, "data[0].url", invalid)
        except AttemptError as exc:
            assert says in exc.message and exc.final and exc.code == "answer_refused"
            assert exc.action.value == "fail_job"
        else:
            raise AssertionError(f"{bad[:30]} was accepted")
    try:
        data_url_bytes("data:image/png;base64," + b64, "big", invalid, cap=10)
    except AttemptError as exc:
        assert "larger than 10 bytes" in exc.message
    else:
        raise AssertionError("the cap was not applied")
