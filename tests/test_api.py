"""The Python API (``batchgen.run``/``run_async``/``resume``) against the embedded simulator:
the demo job file end to end, sync and async, nothing printed, errors a caller can catch."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import batchgen

pytestmark = pytest.mark.timeout(180)

DEMO = Path(__file__).resolve().parents[1] / "jobs" / "demo.jsonl"
SIM = {"tiny": True}  # 64x64 images: the run is about the pipeline, not the pixels


@pytest.fixture(autouse=True)
def _no_real_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def _demo_jobs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DEMO.read_text().splitlines() if line.strip()]


def _saved_images(run_dir: Path) -> int:
    return sum(1 for p in (run_dir / "images").iterdir() if not p.name.startswith("."))


def test_run_the_demo_file_blocks_and_returns_the_result(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    seen: list[batchgen.Progress] = []
    run_dir = tmp_path / "demo"
    result = batchgen.run(DEMO, run_dir=run_dir, provider="sim", sim=SIM, progress=seen.append)
    out, err = capfd.readouterr()
    assert (out, err) == ("", ""), "the library printed"
    jobs = len(_demo_jobs())
    # one demo prompt asks the simulator for a content-policy refusal: failed for good
    assert (result.succeeded, result.failed, result.pending) == (jobs - 1, 1, 0)
    assert result.exit_code == 1 and not result.ok and result.ending == "failed_jobs"
    assert result.stop_reason is None and result.raise_for_stop() is result
    assert result.images == _saved_images(run_dir) > jobs - 1
    assert result.spent_usd > 0 and result.limits is not None and result.limits["adaptive"]
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["run_id"] == result.run_id and manifest["jobs"] == jobs
    assert manifest["sessions"][-1]["how"] == "failed_jobs" and result.session == 1
    assert seen and seen[-1].done == jobs and seen[-1].total == jobs
    assert seen[-1].succeeded == result.succeeded


def test_run_async_takes_job_dicts_inside_an_event_loop(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "async"
    jobs = [job for job in _demo_jobs() if "[sim:" not in job["prompt"]][:6]

    async def main() -> batchgen.RunResult:
        ticks = 0

        async def beat() -> None:  # the caller's loop keeps running while the batch does
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        beating = asyncio.create_task(beat())
        try:
            return await batchgen.run_async(jobs, run_dir=run_dir, provider="sim", sim=SIM)
        finally:
            beating.cancel()
            assert ticks > 1

    result = asyncio.run(main())
    assert capfd.readouterr() == ("", "")
    assert (result.succeeded, result.failed, result.pending, result.exit_code) == (6, 0, 0, 0)
    assert result.ok and result.ending == "completed"
    kept = run_dir / "jobs.jsonl"  # the jobs are kept with the run, for resume
    assert [json.loads(line)["prompt"] for line in kept.read_text().splitlines()] == [
        job["prompt"] for job in jobs
    ]
    assert json.loads((run_dir / "run.json").read_text())["job_file"] == str(kept.resolve())


def test_resume_finishes_what_a_stopped_run_left(tmp_path: Path) -> None:
    run_dir = tmp_path / "stopped"
    jobs = [job for job in _demo_jobs() if "[sim:" not in job["prompt"]]
    first = batchgen.run(
        jobs,
        run_dir=run_dir,
        provider="sim",
        sim={**SIM, "fail_after": "quota=5"},
        concurrency=1,
    )
    assert first.stop_reason == "quota" and first.exit_code == 3 and first.pending > 0
    with pytest.raises(batchgen.RunStopped) as stopped:
        first.raise_for_stop()
    assert stopped.value.reason is batchgen.ErrorClass.QUOTA
    assert isinstance(stopped.value, batchgen.BatchgenError)
    rest = batchgen.resume(run_dir, sim={"fail_after": "quota=1000"})
    assert (rest.succeeded, rest.failed, rest.pending) == (len(jobs), 0, 0)
    assert rest.ok and rest.session == 2 and rest.run_id == first.run_id
    assert rest.images == _saved_images(run_dir)


def test_the_api_key_is_used_and_never_written(tmp_path: Path) -> None:
    secret = "sk-api-test-SECRET0123456789"
    run_dir = tmp_path / "keyed"
    job = {"prompt": "a red cube", "model": "gpt-image-1", "size": "1024x1024", "quality": "low"}
    result = batchgen.run([job], run_dir=run_dir, provider="sim", sim=SIM, api_key=secret)
    assert result.ok
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_errors_are_the_public_classes(tmp_path: Path) -> None:
    with pytest.raises(batchgen.ConfigError, match="rpm must be a number > 0"):
        batchgen.run(DEMO, run_dir=tmp_path / "a", provider="sim", rpm=0)
    with pytest.raises(batchgen.ConfigError, match="unknown keyword argument"):
        batchgen.run(DEMO, run_dir=tmp_path / "b", provider="sim", rmp=300)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": 5}\n')
    with pytest.raises(batchgen.JobFileError) as problems:
        batchgen.run(bad, run_dir=tmp_path / "c", provider="sim", model="gpt-image-1")
    assert isinstance(problems.value, batchgen.UsageError)
    assert not (tmp_path / "c" / "run.json").exists()  # nothing was created or sent
    with pytest.raises(batchgen.RunDirError, match="not a batchgen run directory"):
        batchgen.resume(tmp_path / "nowhere")
    with pytest.raises(batchgen.UsageError, match="no API key"):
        batchgen.run(DEMO, run_dir=tmp_path / "d", base_url="https://api.example.com/v1")


def test_a_run_in_use_raises_run_locked(tmp_path: Path) -> None:
    from batchgen.runlog.rundir import RunDir

    run_dir = tmp_path / "locked"
    job = {"prompt": "a blue cube", "model": "gpt-image-1", "size": "1024x1024", "quality": "low"}
    batchgen.run([job], run_dir=run_dir, provider="sim", sim=SIM)
    with RunDir(run_dir).lock(), pytest.raises(batchgen.RunLocked, match="in use"):
        batchgen.resume(run_dir)


def test_messages_only_when_asked(tmp_path: Path) -> None:
    lines: list[str] = []
    job = {"prompt": "a green cube", "model": "gpt-image-1", "size": "1024x1024", "quality": "low"}
    batchgen.run([job], run_dir=tmp_path / "m", provider="sim", sim=SIM, on_message=lines.append)
    assert any(line.startswith("run dir: ") for line in lines), lines


def test_the_public_surface_is_all() -> None:
    assert set(batchgen.__all__) >= {"run", "run_async", "resume", "report", "RunResult"}
    for name in batchgen.__all__:
        assert getattr(batchgen, name) is not None
    with pytest.raises(AttributeError):
        _ = batchgen.no_such_name  # type: ignore[attr-defined]
