"""Benchmark 7 (issue 17): image checks at ingest.

Photo-sized images (the simulator's ``image_kb`` noise renders, ~400 KB PNGs of ~420×420
pixels) through the simulator at a provider limit the pool reaches (--rpm R, the simulator's
limit R). The same job file runs twice against one simulator process: with the checks at
ingest (the default) and with ``--no-image-checks``; throughput is compared within the bench
run (ratios, never absolute times). Then, on the run made with checks, ``report --format
json`` is timed against ``report --no-image-checks`` (the latter run before and after, the
mean kept). For context, the run made without checks stands for a run made before this
change: its first report measures every image, its second only reads.

Last, untargeted: the checks' worker kind. The same images are measured by two threads and by
two processes while the main thread runs a pure-Python loop (the event loop's stand-in); the
figures are checks/s and how much of its solo speed the main thread keeps.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from bench.clients import batchgen_prefix, client_env, run_batchgen
from bench.jobfiles import write_jobs
from bench.metrics import Figure, Target, window_rate
from bench.proc import run_measured
from bench.simproc import SimProcess

JOBS = 2_000
IMAGE_KB = 400
RPM = 3_000.0  # 50 requests/s: 2,000 jobs in ~40 s
CONCURRENCY = 32
LATENCY = {"latency_mean": 0.3, "latency_jitter": 0.1}
KIND_SAMPLE = 200  # images for the thread-vs-process comparison


def _run(sim: SimProcess, jobfile: Path, run_dir: Path, extra: list[str]) -> dict[str, Any]:
    sim.reset()
    measured = run_batchgen(
        jobfile,
        sim.base_url,
        run_dir,
        concurrency=CONCURRENCY,
        extra=["--rpm", f"{RPM:g}", *extra],
        timeout_s=900,
    )
    stats = sim.stats()
    summary = json.loads((run_dir / "run.json").read_text())["sessions"][-1]["summary"]
    images = summary["images"]
    return {
        "wall_s": measured.wall_s,
        "cpu_s": measured.cpu_s,
        "images": images,
        "images_per_s": images / measured.wall_s,
        "steady_images_per_s": window_rate(stats["accepted"], images=True) / 60.0,
        "image_checks": summary.get("image_checks"),
    }


def _report(run_dir: Path, *extra: str) -> tuple[float, dict[str, Any]]:
    cmd = [*batchgen_prefix(), "report", str(run_dir), "--format", "json", *extra]
    done = run_measured(cmd, env=client_env(), timeout_s=900).check("batchgen report")
    return done.wall_s, json.loads(done.stdout)["image_checks"]


def bench_ingest(root: Path, *, jobs: int = JOBS) -> tuple[list[Figure], dict[str, Any]]:
    jobfile = write_jobs(root / "ingest.jsonl", jobs)
    with_dir, without_dir = root / "with-checks", root / "without-checks"
    with SimProcess(rpm=RPM, image_kb=IMAGE_KB, **LATENCY) as sim:
        off = _run(sim, jobfile, without_dir, ["--no-image-checks"])
        on = _run(sim, jobfile, with_dir, [])
    plain_a, _ = _report(with_dir, "--no-image-checks")
    checked_s, checked = _report(with_dir)
    plain_b, _ = _report(with_dir, "--no-image-checks")
    plain = (plain_a + plain_b) / 2
    old_first_s, old_first = _report(without_dir)
    old_second_s, old_second = _report(without_dir)
    every = (
        checked["checked"]
        == on["images"]
        == sum(checked["measured"].values()) - checked["measured"]["unmeasured"]
    )
    ingest = on["image_checks"] or {}
    note = (
        f"{jobs:,} jobs, {IMAGE_KB} KB PNGs, --rpm {RPM:g} = simulator limit, "
        f"concurrency {CONCURRENCY}"
    )
    figures = [
        Figure(
            "checks at ingest / off, images/s",
            on["images_per_s"] / off["images_per_s"],
            Target(">=", 0.97),
            "×",
            note + "; whole process",
        ),
        Figure(
            "  steady state: checks / off",
            on["steady_images_per_s"] / off["steady_images_per_s"],
            unit="×",
            note="first to last accepted request",
        ),
        Figure("  off: accepted rate / R", off["steady_images_per_s"] * 60 / RPM, unit="×"),
        Figure(
            "  measured at ingest (while requests went)",
            ingest.get("measured", 0) - ingest.get("measured_after_end", 0),
            unit="images",
            note=f"after the last request: {ingest.get('measured_after_end')}, left to the "
            f"report: {ingest.get('deferred', 0) + ingest.get('dropped', 0)}, finish "
            f"{ingest.get('finish_s')} s; checks ran: {ingest.get('where')}",
        ),
        Figure(
            "report: checks / --no-image-checks",
            checked_s / plain,
            Target("<=", 1.5),
            "×",
            f"same run; {checked['measured']['now']} images decoded by the report, "
            f"{checked['measured']['stored']} read from checks/",
        ),
        Figure(
            "  every image checked",
            1.0 if every else 0.0,
            Target(">=", 1.0),
            "",
            f"{checked['checked']} of {on['images']}",
        ),
        Figure(
            "  old run, first report / no checks",
            old_first_s / plain,
            unit="×",
            note=f"decodes {old_first['measured']['now']} and stores them",
        ),
        Figure(
            "  old run, second report / no checks",
            old_second_s / plain,
            unit="×",
            note=f"decodes {old_second['measured']['now']}",
        ),
    ]
    kinds = _kinds(with_dir, KIND_SAMPLE)
    for kind, k in kinds.items():
        figures.append(
            Figure(
                f"  {kind} workers: checks/s",
                k["checks_per_s"],
                unit="img/s",
                note=f"main thread kept {k['main_kept']:.0%} of its solo speed",
            )
        )
    details = {
        "on": on,
        "off": off,
        "report_s": {
            "plain": [plain_a, plain_b],
            "checks": checked_s,
            "old_first": old_first_s,
            "old_second": old_second_s,
        },
        "kinds": kinds,
    }
    shutil.rmtree(with_dir, ignore_errors=True)
    shutil.rmtree(without_dir, ignore_errors=True)
    return figures, details


def _spin(stop: threading.Event) -> int:
    n = 0
    while not stop.is_set():
        for _ in range(1000):
            n += 1
    return n


def _solo_rate(seconds: float = 0.5) -> float:
    """The spinner's speed in a thread of its own, nothing else running in this process."""
    stop = threading.Event()
    counted: list[int] = []
    spinner = threading.Thread(target=lambda: counted.append(_spin(stop)))
    t0 = time.perf_counter()
    spinner.start()
    time.sleep(seconds)
    stop.set()
    spinner.join()
    return counted[0] / (time.perf_counter() - t0)


def _kinds(run_dir: Path, sample: int) -> dict[str, dict[str, float]]:
    """Thread vs process workers on the same images, the main thread busy meanwhile."""
    from batchgen.checks.ingest import IngestChecker

    images = (f for f in (run_dir / "images").iterdir() if f.suffix != ".json")  # no sidecars
    files = sorted(images)[:sample]
    datas = [f.read_bytes() for f in files]
    paths = [f"images/{f.name}" for f in files]
    out = {}
    for kind in ("thread", "process"):
        scratch = run_dir.parent / f"kind-{kind}"  # a run dir of its own: nothing stored yet
        (scratch / "images").mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copyfile(f, scratch / "images" / f.name)
        checker = IngestChecker(
            scratch, 1, kind=kind, workers=2, start_after=1, backlog=sample * 4, flush_s=3600
        )
        checker.start()
        checker.submit(paths[:2], datas[:2])  # warm: the pool started, workers imported
        while checker.measured < 2:
            time.sleep(0.01)
        solo = _solo_rate()  # just before: other load on the machine drifts
        stop = threading.Event()
        t0 = time.perf_counter()
        checker.submit(paths, datas)
        spinner = threading.Thread(
            target=lambda kind=kind, stop=stop: out.setdefault(kind, {"n": _spin(stop)})
        )
        spinner.start()
        while checker.measured < sample + 2:
            time.sleep(0.005)
        elapsed = time.perf_counter() - t0
        stop.set()
        spinner.join()
        checker.finish(0.0)
        out[kind] = {
            "checks_per_s": sample / elapsed,
            "main_kept": out[kind]["n"] / elapsed / solo,
            "solo_per_s": solo,
        }
        shutil.rmtree(scratch, ignore_errors=True)
    return out
