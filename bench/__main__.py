"""``python -m bench`` (``make bench``): run the benchmarks of issue 6, print each figure beside
its target, write ``bench/results.json``. Exit status 1 when a target is missed.

    python -m bench                      every benchmark once (~6 min on 2 cores)
    python -m bench --repeat 3           the closing figures: median of three runs
    python -m bench --only overhead,resume
    python -m bench --quick              small sizes, a smoke test of the harness (~3 min)
    python -m bench --only auto-headers  issue 10: the client finds the limit by itself
    python -m bench --only cluster       issue 28: a run over a local Ray cluster, shared limit
    python -m bench --only upload        issue 28: --images-to s3:// vs plain upload loops
"""

from __future__ import annotations

import argparse
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from batchgen.sim.shapes import SHAPES
from bench import (
    autopilot,
    batch_collect,
    cluster,
    ingest,
    memory,
    overhead,
    scale,
    shapes,
    upload,
    utilisation,
)
from bench.metrics import Figure, median_figures
from bench.report import Outcome, print_table, write_results

RESULTS = Path(__file__).resolve().parent / "results.json"

# (work dir, quick, the repeat's number) -> figures, details
Bench = Callable[[Path, bool, int], tuple[list[Figure], dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Spec:
    key: str
    title: str
    run: Bench


# Order: the CPU-bound overhead comparison first, on a machine the harness has not warmed
# with its own work; the scale benchmarks (which build big files in this process) last.
SPECS = (
    Spec(
        "overhead",
        "3. overhead, instant provider",
        lambda root, quick, i: overhead.bench_overhead(
            root, jobs=500 if quick else overhead.JOBS, first=i
        ),
    ),
    Spec(
        "memory",
        "4. memory vs job file size",
        lambda root, quick, _: memory.bench_memory(
            root, *((1_000, 10_000) if quick else (memory.SMALL, memory.LARGE))
        ),
    ),
    Spec(
        "rpm",
        "1. limit utilisation, --rpm",
        lambda root, quick, _: utilisation.bench_rpm(root, seconds=10 if quick else 62),
    ),
    Spec(
        "ipm",
        "1. limit utilisation, --ipm",
        lambda root, quick, _: utilisation.bench_ipm(root, seconds=10 if quick else 62),
    ),
    Spec(
        "misconfigured",
        "2. misconfigured --rpm 2R",
        lambda root, quick, _: utilisation.bench_misconfigured(root, quick=quick),
    ),
    # issue 10: no --rpm/--ipm/--concurrency, the simulator enforcing its limit (each ≥ 60 s)
    Spec(
        "auto-headers",
        "10. autopilot, rpm, x-ratelimit headers, retry-after-ms",
        lambda root, quick, _: autopilot.bench_headers(root, quick=quick),
    ),
    Spec(
        "auto-noheaders",
        "10. autopilot, rpm, no headers, Retry-After seconds",
        lambda root, quick, _: autopilot.bench_noheaders(root, quick=quick, retry="seconds"),
    ),
    Spec(
        "auto-noheaders-none",
        "10. autopilot, rpm, no headers, no Retry-After",
        lambda root, quick, _: autopilot.bench_noheaders(root, quick=quick, retry="none"),
    ),
    Spec(
        "auto-concurrency",
        "10. autopilot, max 24 concurrent, no rate limit",
        lambda root, quick, _: autopilot.bench_concurrency(root, quick=quick),
    ),
    Spec(
        "auto-ipm",
        "10. autopilot, ipm, n = 1/2/4",
        lambda root, quick, _: autopilot.bench_ipm(root, quick=quick),
    ),
    Spec(
        "auto-moving",
        "10. autopilot, rpm halved at 30 s, restored at 60 s",
        lambda root, quick, _: autopilot.bench_moving(root, quick=quick),
    ),
    # issue 21: realistic shapes (latency of seconds, images/min, plain 429s), time × 0.25
    *(
        Spec(
            f"shape-{sh.key}",
            f"21. {sh.title} (time × {shapes.TIME_SCALE:g})",
            lambda root, quick, _, key=sh.key: shapes.bench_shape(root, key, quick=quick),
        )
        for sh in SHAPES
    ),
    # issue 21, acceptance 3: the same shapes with the limit given, against --no-adapt
    *(
        Spec(
            f"given-{sh.key}",
            f"21. {sh.title}, limit given (time × {shapes.TIME_SCALE:g})",
            lambda root, quick, _, key=sh.key: shapes.bench_given(root, key, quick=quick),
        )
        for sh in SHAPES
    ),
    Spec(
        "instant",
        "21. no flags vs bare aiohttp, instant server, 6,000 jobs",
        lambda root, quick, _: shapes.bench_instant(root, quick=quick),
    ),
    Spec(
        "resume",
        "5. resume scan, 1M rows",
        lambda root, quick, _: scale.bench_resume(root, rows=50_000 if quick else 1_000_000),
    ),
    Spec(
        "report",
        "6. report, 1M rows",
        lambda root, quick, _: scale.bench_report(root, rows=50_000 if quick else 1_000_000),
    ),
    Spec(
        "batch_collect",
        "7. --via batch: collect a ≥ 1 GB output file",
        lambda root, quick, _: batch_collect.bench_batch_collect(
            root, *((40, 500) if quick else (batch_collect.JOBS, batch_collect.IMAGE_KB))
        ),
    ),
    Spec(
        "ingest",
        "8. image checks at ingest",
        lambda root, quick, _: ingest.bench_ingest(root, jobs=300 if quick else ingest.JOBS),
    ),
    # issue 28: a run over a local Ray cluster (4 shards) under one shared limit
    Spec(
        "cluster",
        "28. --ray: 4 shards, 1,200 req/min, shared limit vs per shard",
        lambda root, quick, _: cluster.bench_cluster(root, quick=quick),
    ),
    # issue 28: --images-to s3:// against moto's S3 server, beside plain fsspec/boto3 loops
    Spec(
        "upload",
        "28. upload to an S3 server: batchgen.storage vs plain loops",
        lambda root, quick, _: upload.bench_upload(
            root, images=100 if quick else upload.IMAGES, rounds=1 if quick else upload.ROUNDS
        ),
    ),
)


def run_spec(spec: Spec, root: Path, repeat: int, quick: bool, console: Console) -> Outcome:
    started = time.perf_counter()
    runs: list[list[Figure]] = []
    details: list[dict[str, Any]] = []
    try:
        for i in range(repeat):
            console.print(f"[dim]{spec.title}: run {i + 1} of {repeat}…[/dim]")
            work = root / f"{spec.key}-{i}"
            work.mkdir(parents=True)
            figures, detail = spec.run(work, quick, i)
            runs.append(figures)
            details.append(detail)
    except Exception as exc:  # one benchmark's failure must not hide the others' figures
        console.print(f"[red]{spec.title} failed:[/red]", traceback.format_exc(), markup=False)
        return Outcome(
            spec.key,
            spec.title,
            median_figures(runs),
            details,
            time.perf_counter() - started,
            error=f"{type(exc).__name__}: {exc}",
        )
    return Outcome(
        spec.key, spec.title, median_figures(runs), details, time.perf_counter() - started
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only",
        default="",
        metavar="KEY,...",
        help=f"run only these: {', '.join(s.key for s in SPECS)}",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per benchmark (median kept)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON path")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        metavar="DIR",
        help="work in DIR and keep its files (default: a temp dir, removed)",
    )
    args = parser.parse_args(argv)
    known = {s.key for s in SPECS}
    args.keys = [k.strip() for k in args.only.split(",") if k.strip()] or [s.key for s in SPECS]
    unknown = sorted(set(args.keys) - known)
    if unknown:
        parser.error(f"--only {','.join(unknown)}: unknown; choose from {', '.join(sorted(known))}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="batchgen-bench-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for spec in SPECS:
            if spec.key in args.keys:
                outcomes.append(run_spec(spec, root / spec.key, args.repeat, args.quick, console))
                # written after each benchmark, so an interrupted run keeps what it measured
                meta = {
                    "repeat": args.repeat,
                    "quick": args.quick,
                    "duration_s": round(time.perf_counter() - started, 1),
                }
                write_results(args.out, outcomes, meta)
    print_table(outcomes, console)
    total = time.perf_counter() - started
    console.print(f"{len(outcomes)} benchmarks in {total:.0f} s; results in {args.out}")
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
