"""`run --reuse [LIBRARY]` and `batchgen library`: a second run of the same job file sends
no request and costs nothing, a job with one changed field is sent, a reused row names its
source, and two writers adding at once leave the index whole."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow.compute as pc

from batchgen.library.entries import Entry
from batchgen.library.index import Library
from tests.runhelpers import cli_env, log_table, run_cli, sim_flags, write_jsonl_jobs

JOBS = 12
RUN = [
    "--model",
    "gpt-image-1-mini",
    "--size",
    "1024x1024",
    "--quality",
    "low",
    "--yes",
    "--quiet",
    "--no-image-checks",
]


def _jobs(path: Path, changed: int | None = None) -> Path:
    return write_jsonl_jobs(
        path,
        (
            {
                "id": f"r{i:02d}",
                "prompt": f"a teapot, view {i}",
                **({"quality": "medium"} if i == changed else {}),
            }
            for i in range(JOBS)
        ),
    )


def _run(jobs: Path, run_dir: Path, sim, reuse: dict) -> int:  # type: ignore[no-untyped-def, type-arg]
    from batchgen.config import RunConfig
    from batchgen.session.start import start_run

    flags = {
        "base_url": sim.base_url,
        "model": "gpt-image-1-mini",
        "size": "1024x1024",
        "quality": "low",
        "yes": True,
        "quiet": True,
        "image_checks": False,
        "reuse": reuse,
    }
    return start_run(
        str(jobs), RunConfig.build(flags), run_dir=run_dir, handle_signals=False
    ).exit_code


def test_reuse_second_run_sends_nothing_and_a_changed_job_is_sent(tmp_path: Path, sim) -> None:
    env, lib = cli_env(), tmp_path / "lib"
    jobs = _jobs(tmp_path / "jobs.jsonl")
    first = tmp_path / "first"
    done = run_cli(
        ["run", str(jobs), "--run-dir", str(first), "--reuse", str(lib), *sim_flags(sim), *RUN],
        env=env,
    )
    assert done.code == 0, done.output
    assert sim.stats.received == JOBS
    assert Library(lib).totals()["entries"] == JOBS

    # the same job file again: no request, $0, every row names the first run
    second = tmp_path / "second"
    done = run_cli(
        ["run", str(jobs), "--run-dir", str(second), "--reuse", str(lib), *sim_flags(sim), *RUN],
        env=env,
    )
    assert done.code == 0, done.output
    assert sim.stats.received == JOBS  # nothing sent
    log = log_table(second)
    assert log.num_rows == JOBS
    assert set(log["cost_source"].to_pylist()) == {"reused"}
    assert pc.sum(log["cost_usd"]).as_py() == 0.0
    assert set(log["reused_from"].to_pylist()) == {str(first.resolve())}
    for r in log.to_pylist():
        assert (second / r["image_paths"][0]).read_bytes() == (
            first / "images" / f"{r['job_id']}_0.png"
        ).read_bytes()
    report = run_cli(["report", str(second), "--format", "json", "--no-image-checks"], env=env)
    figures = json.loads(report.stdout)
    assert figures["cost_by_source"] == {"reused": {"rows": JOBS, "cost_usd": 0.0}}
    assert figures["images"] == JOBS and figures["attempts"] == 0  # nothing was sent
    assert figures["cost_note"].startswith(f"{JOBS} images reused from earlier runs")

    # one field changed on one job: that job alone is sent (in process from here on: the
    # same session code as the CLI, without a process start-up each)
    third = tmp_path / "third"
    changed = _jobs(tmp_path / "changed.jsonl", changed=4)
    assert _run(changed, third, sim, {"sources": [{"kind": "library", "path": str(lib)}]}) == 0
    assert sim.stats.received == JOBS + 1
    sent = log_table(third).filter(pc.not_equal(log_table(third)["cost_source"], "reused"))
    assert sent["job_id"].to_pylist() == ["r04"] and sent["quality"].to_pylist() == ["medium"]

    # --reuse-bar: only images scored at least the bar (none of these is scored)
    spec = {"sources": [{"kind": "library", "path": str(lib)}], "bar": 7.0}
    assert _run(jobs, tmp_path / "bar", sim, spec) == 0
    assert sim.stats.received == 2 * JOBS + 1

    ls = run_cli(["library", "ls", "--library", str(lib)], env=env)
    assert str(first.resolve()) in ls.output and "answers" in ls.output


def _entries(tmp: Path, tag: str, k: int) -> list[Entry]:
    out = []
    for i in range(k):
        img = tmp / f"{tag}-{i}.png"
        img.write_bytes(f"{tag} image {i}".encode() * 50)
        fp = hashlib.sha256(f"{tag}{i}".encode()).hexdigest()
        out.append(Entry(fp, f"run-{tag}", str(tmp), f"j{i}", (img,), float(i % 10)))
    return out


def test_writers_adding_at_once_leave_the_index_whole(tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib")
    batches = [_entries(tmp_path, f"t{t}", 40) for t in range(4)]
    errors: list[BaseException] = []

    def add(batch: list[Entry]) -> None:
        try:
            for i in range(0, len(batch), 5):  # many small transactions, interleaved
                Library(lib.root).add_entries(batch[i : i + 5])
        except BaseException as exc:  # pragma: no cover - the failure is asserted
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert lib.totals()["entries"] == 160 and lib.totals()["files"] == 160
    with sqlite3.connect(lib.index_path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    hit = lib.lookup(batches[2][7].fingerprint)
    assert hit is not None and hit.images[0].read_bytes() == batches[2][7].images[0].read_bytes()
    assert lib.lookup(batches[2][7].fingerprint, bar=8.0) is None  # scored 7
    assert lib.lookup("0" * 64) is None


def test_two_processes_adding_at_once(tmp_path: Path) -> None:
    """Two `library add`-like processes on the same library at the same moment."""
    code = (
        "import sys, hashlib; from pathlib import Path\n"
        "from batchgen.library.entries import Entry\n"
        "from batchgen.library.index import Library\n"
        "tag, root = sys.argv[1], Path(sys.argv[2])\n"
        "for i in range(60):\n"
        "    img = root / f'{tag}-{i}.png'; img.write_bytes(f'{tag}{i}'.encode() * 40)\n"
        "    fp = hashlib.sha256(f'{i}'.encode()).hexdigest()  # the same requests in both\n"
        "    Library(root / 'lib').add_entries([Entry(fp, 'run-' + tag, str(root), f'j{i}',"
        " (img,), None)])\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, tag, str(tmp_path)]) for tag in ("a", "b")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    lib = Library(tmp_path / "lib")
    assert lib.totals() == {"entries": 120, "files": 120, "bytes": lib.totals()["bytes"]}
    with sqlite3.connect(lib.index_path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_gc_drops_entries_whose_files_are_gone_and_unreferenced_files(tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib")
    a, b = _entries(tmp_path, "a", 3), _entries(tmp_path, "b", 2)
    lib.add_entries(a + b)
    gone = lib.lookup(a[0].fingerprint)
    assert gone is not None
    gone.images[0].unlink()
    assert lib.lookup(a[0].fingerprint) is None  # a missing file is a miss, not an error
    removed = lib.gc(drop_run="run-b")
    assert removed["entries"] == 3  # b's two, and a's whose file is gone
    assert lib.totals()["entries"] == 2 and lib.totals()["files"] == 2
    assert sorted(p.name for p in (lib.root / "files").glob("*/*")) == sorted(
        lib.lookup(e.fingerprint).images[0].name
        for e in a[1:]  # type: ignore[union-attr]
    )


def test_a_damaged_index_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    from batchgen.errors import UsageError

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "index.sqlite").write_bytes(b"not a database, but long enough to be read" * 4)
    try:
        Library(lib).check()
    except UsageError as exc:
        assert str(lib / "index.sqlite") in str(exc) and "move it aside" in str(exc)
    else:  # pragma: no cover - the failure is the assertion
        raise AssertionError("a damaged index passed the check")
