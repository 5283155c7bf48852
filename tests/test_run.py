"""`batchgen run` end to end against the simulator over real HTTP (issue 2's acceptance)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pytest
from PIL import Image

from batchgen.cli.main import main
from batchgen.runlog.reader import read_log
from batchgen.testing import BackoffWaits
from tests.runhelpers import image_files

KEY = "sk-test-KEEPOUT-7f3a9c1e2b"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def write_jobs(path: Path, jobs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    return path


def run(tmp_path: Path, sim, jobfile: Path, *extra: str) -> tuple[int, Path]:
    run_dir = tmp_path / "run"
    code = main(
        [
            "run",
            str(jobfile),
            "--base-url",
            sim.base_url,
            "--run-dir",
            str(run_dir),
            "--quiet",
            "--model",
            "gpt-image-1-mini",
            "--quality",
            "low",
            "--size",
            "1024x1024",
            "--max-attempts",
            "3",
            *extra,
        ]
    )
    return code, run_dir


def rows(run_dir: Path) -> list[dict]:
    return read_log(run_dir).to_pylist()


def test_faults_are_decided_by_the_taxonomy(
    tmp_path: Path, make_sim, no_backoff: BackoffWaits
) -> None:
    sim = make_sim(retry_after_s=0.5)
    jobfile = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"id": "clean", "prompt": "a red bicycle", "n": 3},
            {"id": "refused", "prompt": "something refused [sim:content_policy]"},
            {"id": "flaky", "prompt": "a lighthouse [sim:server*1]"},
            {"id": "throttled", "prompt": "a harbour [sim:rate_limit*1]", "n": 2},
            {"id": "garbled", "prompt": "a cat [sim:truncated_json*1]"},
        ],
    )
    code, run_dir = run(tmp_path, sim, jobfile, "--concurrency", "2")
    assert code == 1  # one job failed for good
    log = rows(run_dir)
    by_job: dict[str, list[dict]] = {}
    for r in log:
        by_job.setdefault(r["job_id"], []).append(r)

    # content policy: attempted exactly once, never retried
    assert [r["error_class"] for r in by_job["refused"]] == ["content_policy"]
    assert sim.stats.by_prompt["something refused [sim:content_policy]"] == 1
    # 500 then success, on a later attempt
    flaky = sorted(by_job["flaky"], key=lambda r: r["attempt"])
    assert [(r["status"], r["error_class"]) for r in flaky] == [("error", "server"), ("ok", None)]
    assert [r["final"] for r in flaky] == [False, True]
    # invalid response (a body cut on its way) is retried too
    assert [r["status"] for r in sorted(by_job["garbled"], key=lambda r: r["attempt"])] == [
        "error",
        "ok",
    ]
    # 429 retried only after the server's Retry-After
    first, second = sorted(by_job["throttled"], key=lambda r: r["attempt"])
    assert first["error_class"] == "rate_limit" and first["retry_after_s"] == pytest.approx(0.5)
    assert (second["started_at"] - first["finished_at"]).total_seconds() >= 0.5 - 0.01
    # the backoffs of the server error and the bad answer were asked for, not slept
    assert no_backoff.count == 2

    # images on disk == images in ok rows, every one decodable
    ok_paths = {p for r in log if r["status"] == "ok" for p in r["image_paths"]}
    on_disk = image_files(run_dir)  # the --metadata sidecars left out
    assert on_disk == ok_paths
    assert len(ok_paths) == 3 + 1 + 2 + 1
    for p in ok_paths:
        with Image.open(run_dir / p) as im:
            im.load()
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["sessions"][0]["how"] == "failed_jobs"


@pytest.mark.parametrize(
    ("fault", "code"), [("auth", "invalid_api_key"), ("quota", "insufficient_quota")]
)
def test_auth_or_quota_stops_the_run_within_concurrency(
    tmp_path: Path, make_sim, fault: str, code: str
) -> None:
    sim = make_sim(fail_after={fault: 10}, latency_mean=0.01)
    jobfile = write_jobs(tmp_path / "jobs.jsonl", [{"prompt": f"p{i}"} for i in range(200)])
    exit_code, run_dir = run(tmp_path, sim, jobfile, "--concurrency", "4")
    assert exit_code == 3
    failed = sim.stats.outcomes.get(fault, 0)
    assert 1 <= failed <= 4  # no more requests once the first one answered: at most in flight
    log = rows(run_dir)
    assert sum(r["status"] == "ok" for r in log) == 10
    assert {r["error_code"] for r in log if r["status"] == "error"} == {code}
    assert (
        json.loads((run_dir / "run.json").read_text())["sessions"][0]["how"] == f"stopped_{fault}"
    )


BAD_FILES = {
    "bad.jsonl": ('{"prompt": "ok"}\n{"prompt": "broken"\n', ":2:"),
    "noprompt.jsonl": ('{"prompt": "ok"}\n{"size": "1024x1024"}\n', ":2:"),
    "types.jsonl": ('{"prompt": "ok", "n": "2"}\n', ":1:"),
    "dupe.jsonl": ('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', ":2:"),
    "unsafe.jsonl": ('{"id": "../x", "prompt": "x"}\n', ":1:"),
    "noprompt.csv": ("id,size\na,1024x1024\n", ":1:"),
    "dalle.jsonl": ('{"prompt": "x", "model": "dall-e-3", "n": 2}\n', ":1:"),
    "jobs.xyz": ("\x00\x01binary", "jobs.xyz"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_job_files_exit_2_with_file_line_and_send_nothing(
    tmp_path: Path, sim, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    text, where = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(text)
    code, run_dir = run(tmp_path, sim, path)
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}{where}" in err or where in err
    assert sim.stats.received == 0
    assert not (run_dir / "run.json").exists()


def test_missing_key_for_a_remote_url_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    jobfile = write_jobs(tmp_path / "j.jsonl", [{"prompt": "x"}])
    code = main(
        [
            "run",
            str(jobfile),
            "--base-url",
            "https://api.example.invalid/v1",
            "--run-dir",
            str(tmp_path / "r"),
            "--model",
            "gpt-image-1",
        ]
    )
    assert code == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_rpm_holds_over_every_10s_window_including_the_first(tmp_path: Path, make_sim) -> None:
    sim = make_sim()
    rpm = 1500  # 25/s; 300 jobs take ~12 s
    jobfile = write_jobs(tmp_path / "jobs.jsonl", [{"prompt": f"q{i}"} for i in range(300)])
    code, _ = run(tmp_path, sim, jobfile, "--rpm", str(rpm), "--concurrency", "32")
    assert code == 0
    assert sim.stats.max_in_window(10.0) <= rpm / 6 * 1.05
    times = [t for t, _ in sim.stats.accepted]
    assert sum(1 for t in times if t - times[0] < 10.0) <= rpm / 6 * 1.05


def test_ipm_counts_images(tmp_path: Path, make_sim) -> None:
    sim = make_sim()
    ipm = 2400  # 40 images/s; 120 jobs × 4 images take ~12 s
    jobfile = write_jobs(tmp_path / "jobs.jsonl", [{"prompt": f"i{i}", "n": 4} for i in range(120)])
    code, _ = run(tmp_path, sim, jobfile, "--ipm", str(ipm), "--concurrency", "16")
    assert code == 0
    assert sim.stats.max_in_window(10.0, images=True) <= ipm / 6 * 1.05


def test_api_key_never_reaches_files_or_output(
    tmp_path: Path, make_sim, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = make_sim(api_key="sk-the-right-one-0000")  # our key is refused: 401 with messages
    jobfile = write_jobs(tmp_path / "jobs.jsonl", [{"prompt": f"k{i}"} for i in range(5)])
    code, run_dir = run(tmp_path, sim, jobfile)
    assert code == 3
    main(["report", str(run_dir), "--format", "html"])
    main(["report", str(run_dir), "--format", "json", "-o", str(run_dir / "r.json")])
    out = capsys.readouterr()
    assert KEY not in out.out and KEY not in out.err
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for p in files:
        assert KEY.encode() not in p.read_bytes(), p


def test_log_is_readable_while_the_run_goes(tmp_path: Path, make_sim) -> None:
    import subprocess
    import sys
    import time

    sim = make_sim(latency_mean=0.05)
    jobfile = write_jobs(tmp_path / "jobs.jsonl", [{"prompt": f"m{i}"} for i in range(400)])
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batchgen",
            "run",
            str(jobfile),
            "--base-url",
            sim.base_url,
            "--run-dir",
            str(run_dir),
            "--quiet",
            "--model",
            "gpt-image-1-mini",
            "--concurrency",
            "4",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        mid = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if (run_dir / "log").is_dir() and list((run_dir / "log").glob("*.parquet")):
                mid = read_log(run_dir, ["job_id"]).num_rows
                con = duckdb.connect()
                n = con.execute(
                    f"SELECT count(*) FROM read_parquet('{run_dir}/log/*.parquet')"
                ).fetchone()[0]
                if 0 < mid < 400 and n > 0:
                    break
            time.sleep(0.05)  # polling for a file, not timing anything
        assert 0 < mid < 400, "the log should show rows before the run ends"
        assert proc.poll() is None
    finally:
        assert proc.wait(timeout=120) == 0, proc.stderr.read().decode() if proc.stderr else ""
    table = read_log(run_dir, ["status"])
    assert pc.sum(pc.equal(table["status"], "ok")).as_py() == 400


def test_url_answers_are_downloaded_and_metadata_kept(tmp_path: Path, sim) -> None:
    jobfile = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"id": "d3", "prompt": "a fox in snow", "model": "dall-e-3", "quality": "standard"},
            {"id": "g1", "prompt": "a fox in rain", "model": "gpt-image-1", "n": 2},
        ],
    )
    code, run_dir = run(tmp_path, sim, jobfile)
    assert code == 0
    log = {r["job_id"]: r for r in rows(run_dir)}
    assert sim.stats.downloads == 1  # the dall-e-3 url was fetched
    assert log["d3"]["revised_prompt"]
    assert log["d3"]["cost_source"] == "price-table" and log["d3"]["cost_usd"] == pytest.approx(
        0.04
    )
    assert log["g1"]["output_tokens"] > 0 and log["g1"]["cost_source"] == "usage"
    assert log["g1"]["image_count"] == 2 and all(log[j]["request_id"] for j in log)
    for r in log.values():
        assert sum((run_dir / p).stat().st_size for p in r["image_paths"]) == r["image_bytes"]
        for p in r["image_paths"]:
            with Image.open(run_dir / p) as im:
                im.verify()


@pytest.mark.parametrize(
    ("directive", "error_class", "http_status"),
    [
        ("truncated_json", "invalid_response", 200),
        ("server_html", "server", 503),
        ("server", "server", 500),
        ("disconnect", "network", None),
        ("timeout", "timeout", None),
    ],
)
def test_each_transient_fault_is_classified_then_retried(
    tmp_path: Path,
    make_sim,
    no_backoff: BackoffWaits,
    directive: str,
    error_class: str,
    http_status: int | None,
) -> None:
    sim = make_sim(hang_s=5.0)
    prompt = f"a quiet harbour [sim:{directive}*1]"
    jobfile = write_jobs(tmp_path / "jobs.jsonl", [{"id": "j", "prompt": prompt}])
    code, run_dir = run(tmp_path, sim, jobfile, "--timeout", "1")
    assert code == 0
    attempts = sorted(rows(run_dir), key=lambda r: r["attempt"])
    assert [(r["status"], r["error_class"]) for r in attempts] == [
        ("error", error_class),
        ("ok", None),
    ]
    assert attempts[0]["http_status"] == http_status
    assert no_backoff.count == 1  # one backoff asked for (not slept), before the retry
    assert attempts[0]["error_message"] and KEY not in attempts[0]["error_message"]


@pytest.mark.parametrize("directive", ["not_image", "bad_base64"])
def test_a_refused_delivered_answer_fails_its_job_at_once(
    tmp_path: Path, make_sim, no_backoff: BackoffWaits, directive: str
) -> None:
    """Issue 22: the answer arrived (and was billed) but cannot be used: sending the job again
    would be billed and refused again, so it is not retried."""
    sim = make_sim()
    prompt = f"a quiet harbour [sim:{directive}*1]"
    jobfile = write_jobs(tmp_path / "jobs.jsonl", [{"id": "j", "prompt": prompt}])
    code, run_dir = run(tmp_path, sim, jobfile)
    assert code == 1
    (row,) = rows(run_dir)
    assert (row["status"], row["error_class"], row["final"]) == ("error", "invalid_response", True)
    assert row["error_code"] == "answer_refused" and row["http_status"] == 200
    assert sim.stats.by_prompt[prompt] == 1 and no_backoff.count == 0


def test_a_cli_session_runs_with_its_start_up_frozen_and_a_larger_young_generation_then_restores():
    from batchgen.cli.session import session_gc

    before = gc.get_threshold()
    with session_gc():
        assert gc.get_threshold() == (5_000, *before[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_cli_process_collects_its_garbage_once_at_exit_then_freezes_the_rest():
    """The teardown then walks no object in its own full collections (~0.1 s of a 6,000-job
    run's exit), and a garbage cycle still gets its finalizer."""
    code = (
        "import atexit, gc\n"
        "from batchgen.cli.session import session_gc\n"
        "atexit.register(lambda: print('frozen:', gc.get_freeze_count() > 0))\n"
        "with session_gc():\n"
        "    pass\n"
        "gc.disable()\n"
        "class Cycle:\n"
        "    def __del__(self):\n"
        "        print('finalized')\n"
        "c = Cycle(); c.me = c; del c\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split("\n")[:2] == ["finalized", "frozen: True"]
