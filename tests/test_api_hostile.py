"""Issue 22 (#2, #5, #10): the Python API with hostile arguments and concurrent callers.

Two ``run()`` calls on one run directory (threads and processes): the lock is taken before
anything is written, the loser gets RunLocked (or, once the winner's run exists, RunDirError)
and writes nothing, the winner's jobs are the ones run and logged. Every keyword is checked
as its flag is; wrong kinds of ``jobs``, ``progress`` or ``run_dir`` are BatchgenErrors; a
progress callback that raises does not abort the paid run; a missing folder's report is an
error. Counted at the simulator: nothing is sent for a refused call."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import batchgen
from batchgen.errors import BatchgenError, ConfigError, RunDirError, RunLocked, UsageError
from batchgen.runlog.reader import read_log
from tests.runhelpers import SECRET_KEY, cli_env

pytestmark = pytest.mark.timeout(120)

N = 6
KW: dict[str, Any] = {"model": "gpt-image-1", "size": "1024x1024", "quality": "low"}


@pytest.fixture(autouse=True)
def _no_real_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def _jobs(tag: str) -> list[dict[str, Any]]:
    return [{"id": f"{tag}{i}", "prompt": f"{tag} picture {i}"} for i in range(N)]


def _logged_prompts(run_dir: Path) -> set[str]:
    return set(read_log(run_dir, ["prompt"])["prompt"].to_pylist())


def _check_winner(run_dir: Path, winner: str, sim: Any) -> None:
    """The winner's jobs are in jobs.jsonl and the log, nothing of the loser's; the loser
    sent nothing."""
    written = [json.loads(x) for x in (run_dir / "jobs.jsonl").read_text().splitlines()]
    assert written == _jobs(winner)
    assert _logged_prompts(run_dir) == {j["prompt"] for j in _jobs(winner)}
    assert sim.stats.received == N


def test_two_threads_running_into_one_run_dir(make_sim: Any, tmp_path: Path) -> None:
    sim = make_sim(api_key=SECRET_KEY, latency_mean=0.3)
    run_dir = tmp_path / "shared"
    start = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def call(tag: str) -> None:
        start.wait()
        try:
            outcomes[tag] = batchgen.run(
                _jobs(tag),
                run_dir=run_dir,
                base_url=sim.base_url,
                api_key=SECRET_KEY,
                concurrency=2,
                **KW,
            )
        except BaseException as exc:
            outcomes[tag] = exc

    threads = [threading.Thread(target=call, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    won = [t for t, o in outcomes.items() if isinstance(o, batchgen.RunResult)]
    lost = [o for o in outcomes.values() if not isinstance(o, batchgen.RunResult)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    # the loser: refused, as a RunDirError (RunLocked while the winner holds the lock)
    assert isinstance(lost[0], RunDirError), repr(lost[0])
    assert isinstance(lost[0], RunLocked) or "already holds a run" in str(lost[0])
    assert outcomes[won[0]].succeeded == N  # told "succeeded": its jobs ran
    _check_winner(run_dir, won[0], sim)


SCRIPT = """
import json, os, sys
import batchgen
tag = sys.argv[1]
jobs = [{"id": f"{tag}{i}", "prompt": f"{tag} picture {i}"} for i in range(int(os.environ["N"]))]
try:
    r = batchgen.run(jobs, run_dir=os.environ["RUN_DIR"], base_url=os.environ["SIM_URL"],
                     concurrency=2, model="gpt-image-1", size="1024x1024", quality="low")
    print("WON", r.succeeded)
except batchgen.BatchgenError as exc:
    print("LOST", type(exc).__name__, exc)
"""


def test_two_processes_running_into_one_run_dir(make_sim: Any, tmp_path: Path) -> None:
    sim = make_sim(api_key=SECRET_KEY, latency_mean=0.3)
    run_dir = tmp_path / "shared"
    env = {**cli_env(SECRET_KEY), "N": str(N), "RUN_DIR": str(run_dir), "SIM_URL": sim.base_url}
    procs = {
        tag: subprocess.Popen(
            [sys.executable, "-c", SCRIPT, tag],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for tag in ("a", "b")
    }
    outs = {tag: p.communicate(timeout=90)[0] for tag, p in procs.items()}
    assert all(p.returncode == 0 for p in procs.values()), outs
    assert all("Traceback" not in o for o in outs.values()), outs
    won = [t for t, o in outs.items() if o.startswith("WON")]
    lost = [o for o in outs.values() if o.startswith("LOST")]
    assert len(won) == 1 and len(lost) == 1, outs
    assert lost[0].startswith(("LOST RunLocked", "LOST RunDirError")), lost
    assert outs[won[0]].split()[:2] == ["WON", str(N)]
    _check_winner(run_dir, won[0], sim)


@pytest.mark.parametrize(
    ("kwargs", "error", "says"),
    [
        ({"via": "btach"}, ConfigError, "via must be 'live' or 'batch'"),
        ({"sim": {"rpmm": 5}}, ConfigError, "unknown simulator option 'rpmm'"),
        ({"sim": {"rpm": "fast"}}, ConfigError, "option 'rpm' must be a number"),
        ({"sim": {"latency_dist": "gauss"}}, ConfigError, "must be one of lognormal"),
        ({"image_checks": "no"}, ConfigError, "image_checks must be True or False"),
        ({"n": 2.5}, ConfigError, "n must be a whole number"),
        ({"model": 7}, ConfigError, "model must be a non-empty string"),
        ({"progress": 5}, ConfigError, "progress must be a function"),
        ({"jobs": 123}, ConfigError, "not int"),
        ({"jobs": {"prompt": "one"}}, ConfigError, "jobs is one dict"),
        ({"jobs": ["a prompt"]}, ConfigError, "jobs[0] is a str"),
        ({"run_dir": 5}, ConfigError, "run_dir must be a folder's path"),
    ],
)
def test_a_bad_keyword_is_a_clear_error_and_sends_nothing(
    make_sim: Any, tmp_path: Path, kwargs: dict[str, Any], error: type, says: str
) -> None:
    sim = make_sim(api_key=SECRET_KEY)
    call: dict[str, Any] = {
        "run_dir": tmp_path / "run",
        "base_url": sim.base_url,
        "api_key": SECRET_KEY,
        **KW,
        **kwargs,
    }
    jobs = call.pop("jobs", _jobs("x"))
    with pytest.raises(error) as caught:
        batchgen.run(jobs, **call)
    assert says in str(caught.value)
    assert sim.stats.received == 0
    assert not (tmp_path / "run" / "run.json").exists()


def test_a_run_dir_that_is_a_file_is_a_run_dir_error(make_sim: Any, tmp_path: Path) -> None:
    sim = make_sim(api_key=SECRET_KEY)
    (tmp_path / "afile").write_text("mine")
    for run_dir in (tmp_path / "afile", tmp_path / "afile" / "below"):
        with pytest.raises(RunDirError, match="file"):
            batchgen.run(
                _jobs("f"), run_dir=run_dir, base_url=sim.base_url, api_key=SECRET_KEY, **KW
            )
    assert (tmp_path / "afile").read_text() == "mine" and sim.stats.received == 0


def test_run_inside_a_running_event_loop_says_use_run_async(make_sim: Any, tmp_path: Path) -> None:
    sim = make_sim(api_key=SECRET_KEY)

    async def inside() -> None:
        batchgen.run(
            _jobs("l"), run_dir=tmp_path / "run", base_url=sim.base_url, api_key=SECRET_KEY, **KW
        )

    with pytest.raises(UsageError, match="run_async"):
        asyncio.run(inside())
    assert not (tmp_path / "run").exists() and sim.stats.received == 0


def test_a_progress_callback_that_raises_does_not_abort_the_paid_run(
    make_sim: Any, tmp_path: Path
) -> None:
    sim = make_sim(api_key=SECRET_KEY)
    calls: list[int] = []
    messages: list[str] = []

    def progress(p: batchgen.Progress) -> None:
        calls.append(p.done)
        raise ValueError("a bug in the caller's callback")

    result = batchgen.run(
        _jobs("p"),
        run_dir=tmp_path / "run",
        base_url=sim.base_url,
        api_key=SECRET_KEY,
        progress=progress,
        on_message=messages.append,
        **KW,
    )
    assert result.succeeded == N and result.exit_code == 0
    assert sim.stats.received == N
    assert len(calls) == 1  # called once, then not again
    said = [m for m in messages if "progress callback raised ValueError" in m]
    assert len(said) == 1


def test_a_report_of_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="no such folder"):
        batchgen.report(tmp_path / "nope")
    assert issubclass(RunDirError, BatchgenError)
    args = [sys.executable, "-m", "batchgen", "report", str(tmp_path / "nope")]
    done = subprocess.run(args, env=cli_env(None), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "is not a run directory" in done.stderr
    assert "Traceback" not in done.stderr
