"""Image checks at ingest (issue 17): measured while the run goes, stored in checks/, read by
the report. The real CLI against the simulator over HTTP on 127.0.0.1; decodes are counted
from the stored table and the report's own tally, never from timing."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchgen.analyze import CheckConfig, check_images
from batchgen.checks import ingest, lookup
from batchgen.checks.store import visible_files
from batchgen.cli.main import main
from tests.runhelpers import (
    MODEL_FLAGS,
    Cli,
    cli_env,
    logged_images,
    run_cli,
    sim_flags,
    wait_until,
    write_text_jobs,
)

pytestmark = pytest.mark.timeout(180)

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stored_rows(run_dir: Path) -> pa.Table:
    """Every row of every visible file in checks/, as written (no folding of duplicates)."""
    files = visible_files(run_dir)
    if not files:
        return pa.table({"path": pa.array([], pa.string()), "origin": pa.array([], pa.string())})
    return pa.concat_tables([pq.read_table(f, columns=["path", "origin"]) for f in files])


def report_json(run_dir: Path) -> dict:
    done = run_cli(["report", str(run_dir), "--format", "json"], env=cli_env())
    assert done.code == 0, done.output
    return json.loads(done.stdout)["image_checks"]


def fresh_recheck(run_dir: Path, where: Path) -> dict:
    """The same run without any stored measurement: every image decoded again."""
    copy = where / "fresh"
    copy.mkdir()
    for name in ("run.json", "log", "images"):
        src = run_dir / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, copy / name)
    result = check_images(copy)
    assert result.measured == {"stored": 0, "now": result.checked, "unmeasured": 0}
    return result.to_dict()  # as the JSON report holds it, to compare with the CLI's


def verdicts(result: dict) -> tuple:
    return (
        result["checked"],
        result["counts"],
        sorted((f["problem"], f["path"]) for f in result["findings"]),
        sorted(map(sorted, result["duplicate_groups"])),
    )


@linux_only
@pytest.mark.parametrize(
    ("count", "latency"),
    [
        # as long a run as the 1,000 (~13 s at 24 answers/s, so a check part is stored well
        # before the end), a third of the images to decode, check and report on
        pytest.param(300, 0.17, id="300"),
        pytest.param(1_000, 0.05, id="1000", marks=pytest.mark.slow),
    ],
)
def test_kill_9_mid_run_then_resume_each_image_checked_once(
    tmp_path: Path, make_sim, count: int, latency: float
) -> None:
    # 64x64 renders from 150 pictures: wrong_size for every image, and duplicate groups
    sim = make_sim(latency_mean=latency, latency_jitter=0.01, variants=150, seed=17)
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"ingest job {i:04d}" for i in range(count)))
    run_dir = tmp_path / "run"
    common = [*sim_flags(sim), "--concurrency", "4", "--yes", "--quiet"]
    cli = Cli(["run", str(jobs), "--run-dir", str(run_dir), *MODEL_FLAGS, *common], env=cli_env())
    # killed once the background checks have stored something, while requests still go
    wait_until(
        lambda: any(p.name.startswith("s00001") for p in visible_files(run_dir)),
        what="a stored check part",
        cli=cli,
        timeout=60,
    )
    served_at_kill = sim.stats["ok"]
    workers = children_of(cli.pid)
    assert workers, "the checks' worker processes were not running"
    assert cli.kill_hard().code == -9
    # orphaned by kill -9, the workers notice and exit: nothing left running
    wait_until(lambda: not any(alive(p) for p in workers), what="the workers to exit", timeout=30)
    assert served_at_kill < count
    stored_before = stored_rows(run_dir).num_rows
    assert stored_before > 0

    # the slow answers were there to keep the first session going until a check part was
    # stored; the resume only has to finish the rest (its checks store at the finish or on
    # the way, both counted below), so it gets quick answers
    sim.update(latency_mean=0.02)
    done = run_cli(["resume", str(run_dir), *common], env=cli_env())
    assert done.code == 0, done.output
    images = logged_images(run_dir)
    assert len(images) == len(set(images)) == count

    first = report_json(run_dir)
    rows = stored_rows(run_dir)
    paths = rows["path"].to_pylist()
    # exactly one stored result per image: nothing measured twice, nothing left out
    assert len(paths) == len(set(paths)) == count
    assert set(paths) == set(images)
    assert first["measured"]["stored"] + first["measured"]["now"] == count
    assert first["measured"]["stored"] >= stored_before  # the ingest results were used
    origins = set(rows["origin"].to_pylist())
    assert "ingest" in origins or "finish" in origins

    fresh = fresh_recheck(run_dir, tmp_path)
    assert verdicts(first) == verdicts(fresh)
    assert first["counts"]["wrong_size"] == count and first["counts"]["duplicate"] > 0

    second = report_json(run_dir)
    assert second["measured"] == {"stored": count, "now": 0, "unmeasured": 0}
    assert stored_rows(run_dir).num_rows == count
    assert verdicts(second) == verdicts(first)


def test_report_on_an_old_run_checks_each_image_once(tmp_path: Path, make_sim) -> None:
    """A run without stored measurements (made before ingest checks, here with
    --no-image-checks): the first report decodes every image and stores the results, the
    second decodes none; new thresholds re-evaluate the stored numbers."""
    sim = make_sim(variants=40, seed=5)
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"old run {i:03d}" for i in range(60)))
    run_dir = tmp_path / "run"
    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--yes",
            "--quiet",
            "--no-image-checks",
        ],
        env=cli_env(),
    )
    assert done.code == 0, done.output
    assert not (run_dir / "checks").exists()
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["sessions"][-1]["summary"]["image_checks"] == {"where": "off"}

    first = report_json(run_dir)  # 60 > lookup.INLINE_MAX: measured on the process pool
    assert first["measured"] == {"stored": 0, "now": 60, "unmeasured": 0}
    assert stored_rows(run_dir).num_rows == 60
    second = report_json(run_dir)
    assert second["measured"] == {"stored": 60, "now": 0, "unmeasured": 0}
    assert stored_rows(run_dir).num_rows == 60  # nothing measured, nothing written
    assert verdicts(second) == verdicts(first)


def test_new_thresholds_re_evaluate_without_decoding(
    tmp_path: Path, make_sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = make_sim(variants=30, seed=9)
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"thresholds {i:02d}" for i in range(12)))
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "run",
                str(jobs),
                "--run-dir",
                str(run_dir),
                *MODEL_FLAGS,
                *sim_flags(sim),
                "--yes",
                "--quiet",
            ]
        )
        == 0
    )
    before = check_images(run_dir)  # 12 images: measured in this process, then stored
    assert before.measured["stored"] + before.measured["now"] == 12
    assert before.counts["blank"] == 0

    def no_decoding(*_: object, **__: object) -> None:
        raise AssertionError("an image was decoded again")

    monkeypatch.setattr(lookup, "measure_batch", no_decoding)
    strict = check_images(run_dir, CheckConfig(blank_std=1e9))
    assert strict.measured == {"stored": 12, "now": 0, "unmeasured": 0}
    assert strict.counts["blank"] == 12  # every image now "blank", from stored std-devs
    blurry = check_images(run_dir, CheckConfig(blur_laplacian_var=1e12))
    assert blurry.counts["blurred"] == 12
    # the measurement itself changes with the thumbnail size: that one needs decoding
    with pytest.raises(AssertionError, match="decoded again"):
        check_images(run_dir, CheckConfig(thumb_px=128))


def test_a_full_backlog_drops_work_which_the_report_checks(
    tmp_path: Path, make_sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool never waits for the checks: past the backlog's bound images are only counted,
    and after the last request the queue is worked for a bounded time (here none). The report
    measures exactly what the session did not store."""
    made: list[ingest.IngestChecker] = []

    def small_checker(run_dir: Path, session: int) -> ingest.IngestChecker:
        checker = ingest.IngestChecker(
            run_dir, session, backlog=20, start_after=10_000, finish_cap_s=0.0
        )
        made.append(checker)
        return checker.start()

    monkeypatch.setattr(ingest, "start_ingest_checks", small_checker)
    sim = make_sim(variants=50, seed=2)
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"backlog {i:02d}" for i in range(50)))
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "run",
                str(jobs),
                "--run-dir",
                str(run_dir),
                *MODEL_FLAGS,
                *sim_flags(sim),
                "--yes",
                "--quiet",
            ]
        )
        == 0
    )
    stats = made[0].stats()
    assert stats.submitted == 50
    assert stats.dropped == 30 and stats.deferred == 20 and stats.measured == 0
    assert stats.where == "deferred"
    summary = json.loads((run_dir / "run.json").read_text())["sessions"][-1]["summary"]
    assert summary["image_checks"]["dropped"] == 30
    assert stored_rows(run_dir).num_rows == 0

    result = check_images(run_dir)
    assert result.measured == {"stored": 0, "now": 50, "unmeasured": 0}
    assert stored_rows(run_dir).num_rows == 50


def test_one_worker_measures_a_backlog_it_drains(tmp_path: Path) -> None:
    """Each worker costs ~0.2 s of CPU to start: a backlog one worker drains gets no other,
    even one longer than GROW_BACKLOG (piled up before the workers started)."""
    from PIL import Image

    (tmp_path / "images").mkdir()
    paths, data = [], []
    for i in range(ingest.GROW_BACKLOG + 40):
        path = tmp_path / "images" / f"g{i:04d}_0.png"
        Image.new("RGB", (24, 16), (i % 256, 40, 90)).save(path)
        paths.append(f"images/{path.name}")
        data.append(path.read_bytes())
    checker = ingest.IngestChecker(tmp_path, 1, workers=2, start_after=1).start()
    checker.submit(paths, data)
    stats = checker.finish(budget_s=60.0)
    assert stats.measured == len(paths) and stats.deferred == 0
    assert checker.started_workers == 1


def test_another_worker_when_the_backlog_is_not_kept_up_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The growth rule on a controlled clock: a look every GROW_EVERY_S; a worker more only
    when the backlog is long and has not shrunk since the last look; never past ``workers``."""
    now = [100.0]
    monkeypatch.setattr(ingest, "_monotonic", lambda: now[0])
    checker = ingest.IngestChecker(tmp_path, 1, workers=2)
    pool = ingest.WorkerPool(2, nice=False, start=1)
    try:
        checker._grow_look = (now[0], float("inf"))  # as when the first worker starts
        checker._backlog.extend(("p", 1) for _ in range(ingest.GROW_BACKLOG + 10))
        now[0] += ingest.GROW_EVERY_S
        checker._grow(pool)  # long, but no earlier look: not yet
        assert pool.size == 1
        now[0] += ingest.GROW_EVERY_S / 2
        checker._backlog.extend(("p", 1) for _ in range(10))
        checker._grow(pool)  # too soon after the last look
        assert pool.size == 1
        for _ in range(15):  # drained a little since the last look
            checker._backlog.popleft()
        now[0] += ingest.GROW_EVERY_S
        checker._grow(pool)
        assert pool.size == 1
        checker._backlog.extend(("p", 1) for _ in range(5))  # not shrunk since: another one
        now[0] += ingest.GROW_EVERY_S
        checker._grow(pool)
        assert pool.size == 2
        checker._backlog.extend(("p", 1) for _ in range(3 * ingest.GROW_BACKLOG))
        now[0] += ingest.GROW_EVERY_S
        checker._grow(pool)
        assert pool.size == 2  # never more than allowed
    finally:
        pool.shutdown(wait=True)
