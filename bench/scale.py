"""Benchmarks 5 and 6: the resume scan and the report on a synthetic 1M-row log.

The log comes from ``batchgen.testing.synthetic`` (the analyzers' own generator, vectorised);
its ``fingerprint`` column is filled from the job file's own index, with a few jobs edited, so
resume does the full comparison a real resume does. The run dir also holds the job index
``batchgen run`` stores (``state/job-index.parquet``, keyed by the job file's sha256), so the
timed path is resume's own: sha256 of the job file, read the index, job states, remaining.
The old path (rescan the job file) is timed after it, as a figure without a target, and must
give the same answer. Each timing runs in a fresh child process.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench.metrics import Figure, Target
from bench.proc import run_measured

RESUME_TARGET_S = 3.0
REPORT_TARGET_S = 10.0
ROWS_PER_JOB = 1.056  # synthetic_log's default faults give ~5.6% retried attempts
EDITED_EVERY = 100  # one job in 100 changed since it was logged
DEFAULTS: dict[str, object] = {}  # the job file names every field; run.json records these


def job_body(i: int) -> dict[str, str]:
    return {
        "prompt": f"a watercolour fox, variant {i}",
        "model": "gpt-image-1",
        "size": "1024x1024",
        "quality": "medium",
    }


def make_resume_case(root: Path, rows: int) -> tuple[Path, Path, int]:
    """A run dir with a ~``rows``-row log and a job file of ``rows`` lines: (run, jobs, rows)."""
    import pyarrow as pa

    from batchgen.jobs import fingerprint, sha256_file
    from batchgen.runlog.jobindex import IndexBuilder, write_index
    from batchgen.testing.synthetic import synthetic_log, write_run

    jobs_path = root / "jobs-1m.jsonl"
    index = IndexBuilder()
    fps: dict[str, str] = {}
    with jobs_path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            body = job_body(i)
            f.write(json.dumps({"id": f"job-{i:07d}", **body}, separators=(",", ":")) + "\n")
            # the job reader's body is the line without its id (no defaults given)
            fps[f"job-{i:07d}"] = fingerprint(body)
            index.add(f"job-{i:07d}", fps[f"job-{i:07d}"], i + 1)
    table = synthetic_log(int(rows / ROWS_PER_JOB))
    logged = table["job_id"].to_pylist()
    # a job edited since it was logged: every row of it carries the old body's fingerprint
    column = [fps[j] if int(j[4:]) % EDITED_EVERY else "0" * 64 for j in logged]
    table = table.set_column(
        table.schema.get_field_index("fingerprint"), "fingerprint", pa.array(column, pa.string())
    )
    run = write_run(root / "resume-run", table, jobs=rows)
    # what `batchgen run` stores from its validation pass (the child checks it against a scan)
    (run / "state").mkdir(exist_ok=True)
    write_index(run / "state", index.table(), sha256_file(jobs_path), DEFAULTS)
    return run, jobs_path, table.num_rows


def make_report_case(root: Path, rows: int) -> tuple[Path, int]:
    from batchgen.testing.synthetic import synthetic_log, write_run

    jobs = int(rows / ROWS_PER_JOB)
    table = synthetic_log(jobs)
    return write_run(root / "report-run", table, jobs=jobs), table.num_rows


def time_resume(run: Path, jobs_path: Path) -> dict[str, float]:
    """In this process, what resume does: sha256 of the job file and its stored index, job
    states from the log, the remaining set. Then the old path (rescan the file), which must
    agree."""
    from batchgen.jobs import job_index, sha256_file
    from batchgen.runlog.jobindex import read_index
    from batchgen.runlog.state import job_states, remaining

    t0 = time.perf_counter()
    index = read_index(run / "state", sha256_file(jobs_path), DEFAULTS)
    if index is None:
        msg = f"{run}/state/job-index.parquet: missing or not for {jobs_path}"
        raise SystemExit(msg)
    t1 = time.perf_counter()
    states = job_states(run)
    t2 = time.perf_counter()
    rest = remaining(index, states)
    t3 = time.perf_counter()
    del index
    scanned = remaining(job_index(jobs_path, DEFAULTS), states)
    t4 = time.perf_counter()
    if scanned != rest:
        msg = (
            f"the stored index and a scan of {jobs_path} disagree: "
            f"{rest.summary()} vs {scanned.summary()}"
        )
        raise SystemExit(msg)
    return {
        "index_s": t1 - t0,
        "states_s": t2 - t1,
        "remaining_s": t3 - t2,
        "total_s": t3 - t0,
        "without_index_s": (t2 - t1) + (t4 - t3),  # job_states + rescan + remaining
        "scan_remaining_s": t4 - t3,
        "run": len(rest.run),
        "edited": len(rest.edited),
        "skipped_done": rest.skipped_done,
    }


def bench_resume(root: Path, rows: int = 1_000_000) -> tuple[list[Figure], dict[str, object]]:
    run, jobs_path, logged = make_resume_case(root, rows)
    child = run_measured(
        [sys.executable, "-m", "bench.scale", "resume", str(run), str(jobs_path)]
    ).check("the resume scan")
    timing = json.loads(child.stdout.strip().splitlines()[-1])
    figures = [
        Figure(
            "resume scan, stored index + job states + remaining",
            timing["total_s"],
            Target("<=", RESUME_TARGET_S),
            "s",
            f"{logged:,} log rows, {rows:,} job lines",
        ),
        Figure("  of which sha256 of the job file + read the index", timing["index_s"], unit="s"),
        Figure("  of which job_states", timing["states_s"], unit="s"),
        Figure("  of which remaining", timing["remaining_s"], unit="s"),
        Figure(
            "  without the index: rescan + job_states + remaining",
            timing["without_index_s"],
            unit="s",
        ),
    ]
    return figures, {**timing, "log_rows": logged, "job_lines": rows, "wall_s": child.wall_s}


def report_command(run: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "batchgen",
        "report",
        str(run),
        "--format",
        "json",
        "--no-image-checks",
    ]


def bench_report(root: Path, rows: int = 1_000_000) -> tuple[list[Figure], dict[str, object]]:
    run, logged = make_report_case(root, rows)
    child = run_measured(report_command(run)).check("batchgen report")
    json.loads(child.stdout)  # it must be the report, not an error page
    figures = [
        Figure(
            "report --format json --no-image-checks",
            child.wall_s,
            Target("<=", REPORT_TARGET_S),
            "s",
            f"{logged:,} log rows, whole process",
        ),
        Figure("  its peak RSS", child.peak_rss_mb, unit="MB"),
    ]
    return figures, {"log_rows": logged, "wall_s": child.wall_s, "cpu_s": child.cpu_s}


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "resume":
        print(json.dumps(time_resume(Path(argv[1]), Path(argv[2]))))
        return 0
    print("usage: python -m bench.scale resume RUN_DIR JOB_FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
