"""Benchmarks of issue 21: the autopilot on realistic provider shapes (batchgen.sim.shapes),
through the real CLI and real HTTP against the simulator in its own process, with no --rpm,
--ipm or --concurrency. Real time is scaled down by ``TIME_SCALE`` (latencies × 0.25, limits ÷
0.25, schedule times × 0.25): a 15 s provider answers in 3.75 s at four times its limit, so the
ratios (efficiency, 429 share, the worst second over the limit's share) are those of the real
shape in a quarter of the time. (At × 0.1 the seconds judged are 100 ms bins, and on a loaded
2-core machine the event loop's own stalls show up as bursts.) The wall judged is the run's
span from its log (first request to last answer): the process's start-up is not the
autopilot's. Each figure row also says what the client learned.

``instant`` is the CPU-bound end (issue 21, point 4): an instant local server, 6,000 jobs,
the bare aiohttp loop, ``batchgen run`` with no flags and with ``--no-adapt --concurrency 64``,
one after the other against one simulator process; the ratios are taken within the run. It
is judged with tiny images (each request's own cost, the strictest case) and printed again with
benchmark 3's 48 KB images.
"""

from __future__ import annotations

import statistics
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from batchgen.sim.shapes import BY_KEY, Shape
from bench.autopilot import read_autopilot
from bench.clients import compile_bytecode, instant_client, run_batchgen
from bench.jobfiles import write_jobs
from bench.metrics import Figure, Target
from bench.overhead import IMAGE_KB
from bench.simproc import SimProcess
from bench.storage import fs_type, memory_root

TIME_SCALE = 0.25


def _ns_jobs(path: Path, shape: Shape) -> Path:
    return write_jobs(path, shape.jobs, n=shape.ns)


def shape_figures(
    shape: Shape,
    stats: dict[str, Any],
    wall_s: float,
    scale: float,
    learned: dict[str, Any] | None,
) -> tuple[list[Figure], dict[str, Any]]:
    """Efficiency, 429 share and the worst second from the simulator's own record."""
    received = sorted(
        [(t, n, True) for t, n in stats.get("accepted") or []]
        + [(t, n, False) for t, n in stats.get("refused") or []]
    )
    refused = sum(1 for _, _, ok in received if not ok)
    share = refused / max(1, len(received))
    t0 = stats.get("first_received") or 0.0
    ideal = shape.ideal_s() * scale
    hint_t = next((t for t, _, ok in received if not ok), None)
    if shape.headers and received:  # the first answer's headers: about one latency in
        first_answer = received[0][0] + shape.latency_median * scale
        hint_t = first_answer if hint_t is None else min(hint_t, first_answer)
    per_s_limit = shape.limit_per_s() / scale
    bins: dict[int, int] = {}
    images = shape.ipm is not None
    for t, n, _ in received:
        k = int((t - t0) / scale)  # a second of the real (unscaled) shape
        bins[k] = bins.get(k, 0) + (n if images else 1)
    after = [c for k, c in bins.items() if hint_t is not None and k > int((hint_t - t0) / scale)]
    # a limit under a request a second (5 img/min): a second with one request of n images
    # is not a burst; judged only past 2 × n
    floor = 2 * max(shape.ns) if images else 2
    worst_count = max([0, *after])
    worst = worst_count / (per_s_limit * scale) if worst_count > floor else 0.0
    bound = 0.02 if shape.hint else 0.05
    learned_text = ", ".join(
        f"{k} {learned.get(k)} ({learned.get(f'{k}_source')})"
        for k in ("rpm", "ipm", "concurrency")
        if learned and learned.get(k) is not None
    )
    figures = [
        Figure(
            "efficiency (ideal / wall)",
            ideal / wall_s if wall_s else None,
            Target(">=", 0.90),
            "×",
            f"ideal {ideal:.1f} s (scaled ×{scale:g}); learned: {learned_text or 'nothing'}",
        ),
        Figure(
            "429 share", share, Target("<=", bound), "of requests", f"{refused} of {len(received)}"
        ),
    ]
    if shape.max_concurrent is None:
        figures.append(
            Figure(
                "worst second after the first 429 / limit's share",
                worst,
                Target("<=", 2.0),
                "×",
                "seconds of the unscaled shape",
            )
        )
    return figures, {
        "per_s": [bins.get(k, 0) for k in range(max(bins, default=0) + 1)],
        "learned": learned,
        "wall_s": wall_s,
    }


def bench_shape(root: Path, key: str, *, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    shape = BY_KEY[key]
    scale = TIME_SCALE / (2 if quick else 1)
    jobfile = _ns_jobs(root / f"{key}.jsonl", shape)
    with SimProcess(**shape.sim_knobs(scale)) as sim:
        figures, details = _one_run(sim, shape, jobfile, root / f"{key}-run", scale, None, [])
    return figures, details


def _one_run(
    sim: SimProcess,
    shape: Shape,
    jobfile: Path,
    run_dir: Path,
    scale: float,
    concurrency: int | None,
    extra: list[str],
) -> tuple[list[Figure], dict[str, Any]]:
    sim.reset()
    measured = run_batchgen(
        jobfile,
        sim.base_url,
        run_dir,
        concurrency=concurrency,
        extra=extra,
        timeout_s=max(300.0, 8 * shape.ideal_s() * scale),
        ok=(0, 1, 3),
    )
    stats = sim.stats()
    learned = read_autopilot(run_dir)
    # the run's own span (first request sent to last answer, from its log): the process's
    # start-up (imports, validation, the quote) is not the autopilot's, and on a shape scaled
    # to seconds it would weigh ten times what it does on the real one
    span = _log_span(run_dir) or measured.wall_s
    figures, details = shape_figures(shape, stats, span, scale, learned)
    details["process_wall_s"] = measured.wall_s
    return figures, details


def rate_flags(shape: Shape, scale: float) -> list[str]:
    """The server's rate limit as flags (scaled as the simulator's is)."""
    flags = []
    if shape.rpm is not None:
        flags += ["--rpm", f"{shape.rpm / scale:g}"]
    if shape.ipm is not None:
        flags += ["--ipm", f"{shape.ipm / scale:g}"]
    return flags


def bench_given(root: Path, key: str, *, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    """Issue 21, acceptance 3: the limit given as flags equal to the server's (``--rpm``,
    ``--ipm``, ``--concurrency`` for a cap on tasks), the autopilot against ``--no-adapt`` with
    the same flags (``--concurrency 128`` where the shape caps no tasks), one after the other
    against one simulator process."""
    shape = BY_KEY[key]
    scale = TIME_SCALE / (2 if quick else 1)
    jobfile = _ns_jobs(root / f"{key}.jsonl", shape)
    flags = rate_flags(shape, scale)
    with SimProcess(**shape.sim_knobs(scale)) as sim:
        auto, auto_d = _one_run(
            sim, shape, jobfile, root / f"{key}-given", scale, shape.max_concurrent, flags
        )
        fixed, fixed_d = _one_run(
            sim,
            shape,
            jobfile,
            root / f"{key}-fixed",
            scale,
            shape.max_concurrent or 128,
            [*flags, "--no-adapt"],
        )
    eff, share = auto[0].value, auto[1].value
    fixed_eff, fixed_share = fixed[0].value, fixed[1].value
    given = " ".join(
        flags + (["--concurrency", str(shape.max_concurrent)] if shape.max_concurrent else [])
    )
    figures = [
        Figure("efficiency, limit given", eff, Target(">=", 0.95), "×", given),
        Figure("429 share, limit given", share, Target("<=", 0.01), "of requests", auto[1].note),
        Figure(
            "efficiency − --no-adapt's",
            None if eff is None or fixed_eff is None else eff - fixed_eff,
            Target(">=", -0.03),
            "",
            f"--no-adapt: {fixed_eff or 0:.3f}",
        ),
        Figure(
            "429 share − --no-adapt's",
            None if share is None or fixed_share is None else share - fixed_share,
            Target("<=", 0.0),
            "",
            f"--no-adapt: {fixed[1].note}",
        ),
    ]
    return figures, {"given": auto_d, "no_adapt": fixed_d}


def _log_span(run_dir: Path) -> float | None:
    import pyarrow.compute as pc

    from batchgen.runlog.reader import read_log

    log = read_log(run_dir, columns=["started_at", "finished_at"])
    if log.num_rows == 0:
        return None
    start = pc.min(log["started_at"]).as_py()
    end = pc.max(log["finished_at"]).as_py()
    return (end - start).total_seconds() if start is not None and end is not None else None


INSTANT_CLIENTS = ("aiohttp", "batchgen", "no-adapt")


def _instant_rounds(
    jobfile: Path, jobs: int, rounds: int, knobs: dict[str, Any]
) -> tuple[dict[str, list[float]], dict[str, list[float]], str]:
    """``rounds`` rounds of the three clients against one simulator started with ``knobs``,
    interleaved (the order rotates each round: A B C, B C A, C A B), so a change in the
    machine's load or the disk's write-back state hits every client alike. Returns each
    client's images per second and per CPU second, round by round, and the filesystem."""
    rates: dict[str, list[float]] = {name: [] for name in INSTANT_CLIENTS}
    cpu: dict[str, list[float]] = {name: [] for name in INSTANT_CLIENTS}
    # the clients write to a memory filesystem where there is one, as benchmark 3 does: the
    # issue asks for the CPU-bound case, and on this VM a fresh file on ext4 costs 0.1-0.9 ms
    # of kernel time that swings 10x between runs (bench/storage.py) and bills batchgen's run
    # directory (log, sidecars, index) beside the images against it
    memory = memory_root()
    with (
        tempfile.TemporaryDirectory(dir=memory)
        if memory
        else nullcontext(str(jobfile.parent)) as where,
        SimProcess(**knobs) as sim,
    ):
        out = Path(where)
        for i in range(rounds):
            for name in INSTANT_CLIENTS[i % 3 :] + INSTANT_CLIENTS[: i % 3]:
                sim.reset()
                measured = instant_client(name, jobfile, sim.base_url, out, jobs)
                rates[name].append(jobs / measured.wall_s)
                cpu[name].append(jobs / measured.cpu_s)
        return rates, cpu, fs_type(out)


def bench_instant(
    root: Path, *, quick: bool, rounds: int = 3
) -> tuple[list[Figure], dict[str, Any]]:
    """Each ratio is taken within its round and the median of the rounds is reported, beside
    each client's median rate. Judged with tiny images (a few bytes: each request's own cost
    and nothing else, the strictest case); printed again, not judged, with benchmark 3's
    48 KB images, where decoding and writing the picture is part of each job's work."""
    jobs = 1_500 if quick else 6_000
    jobfile = write_jobs(root / "instant.jsonl", jobs)
    compile_bytecode()
    rates, cpu, written_on = _instant_rounds(jobfile, jobs, rounds, {"tiny": True})
    sized_rates, sized_cpu, _ = _instant_rounds(jobfile, jobs, rounds, {"image_kb": IMAGE_KB})

    def _listed(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    def within(rate: dict[str, list[float]], name: str) -> list[float]:
        return [b / a for a, b in zip(rate["aiohttp"], rate[name], strict=True)]

    no_flags, no_adapt = within(rates, "batchgen"), within(rates, "no-adapt")
    mid = {name: statistics.median(values) for name, values in rates.items()}
    figures = [
        Figure(
            "no flags / bare aiohttp, images/s",
            statistics.median(no_flags),
            Target(">=", 0.8),
            "×",
            f"{jobs:,} jobs, instant server, tiny images, files on {written_on}, whole "
            f"process, median of {rounds} interleaved rounds ({_listed(no_flags)}); median "
            f"rates: bare {mid['aiohttp']:.0f}/s, no flags {mid['batchgen']:.0f}/s, "
            f"--no-adapt --concurrency 64 {mid['no-adapt']:.0f}/s",
        ),
        Figure(
            "--no-adapt / bare aiohttp", statistics.median(no_adapt), None, "×", _listed(no_adapt)
        ),
        # the machine's load moves wall time far more than CPU time: images per CPU second
        # (user + system of the client's process) says what each client's own work costs
        Figure(
            "no flags / bare aiohttp, images per CPU s",
            statistics.median(within(cpu, "batchgen")),
            None,
            "×",
            _listed(within(cpu, "batchgen")),
        ),
        Figure(
            "--no-adapt / bare aiohttp, images per CPU s",
            statistics.median(within(cpu, "no-adapt")),
            None,
            "×",
            _listed(within(cpu, "no-adapt")),
        ),
    ]
    for label, per in (("images/s", sized_rates), ("images per CPU s", sized_cpu)):
        for name, flags in (("batchgen", "no flags"), ("no-adapt", "--no-adapt")):
            ratios = within(per, name)
            figures.append(
                Figure(
                    f"{flags} / bare aiohttp, {IMAGE_KB} KB images, {label}",
                    statistics.median(ratios),
                    None,
                    "×",
                    _listed(ratios),
                )
            )
    sized = {"images_per_s": sized_rates, "images_per_cpu_s": sized_cpu}
    return figures, {"images_per_s": rates, "images_per_cpu_s": cpu, f"{IMAGE_KB}kb": sized}
