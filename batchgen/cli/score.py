"""``batchgen score RUN_DIR``: score every saved image against its prompt.

--judge MODEL asks a vision chat model (OpenAI-compatible chat completions, the image sent as
a data URL) for a 1-10 score, the defects it sees and one line of reasons, with a rubric
(--rubric FILE replaces the default). --scorer clip scores prompt-image alignment locally with
a CLIP model (pip install 'batchgen[clip]'). Verdicts go to RUN_DIR/scores/ (Parquet), one
durable row per image as it arrives: a killed `score` run again judges only the rest.

Exit status: 0 every image scored; 1 some could not be scored; 2 bad usage; 3 stopped early
(budget, auth, quota, interrupt): run `batchgen score` again.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from batchgen.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_USAGE,
    UsageError,
    add_session_arguments,
    pool_values,
    prefer_system_allocator,
)


def add_scorer_arguments(parser: argparse.ArgumentParser, *, for_resume: bool = False) -> None:
    group = parser.add_argument_group("scoring")
    group.add_argument(
        "--judge",
        metavar="MODEL",
        help="a vision-capable chat model as the judge, e.g. gpt-4o-mini",
    )
    group.add_argument(
        "--scorer",
        choices=("judge", "clip"),
        help="judge (a chat model, --judge MODEL) or clip (local, pip install 'batchgen[clip]')",
    )
    group.add_argument(
        "--clip-model",
        metavar="NAME_OR_PATH",
        help="CLIP model for --scorer clip: a Hugging Face name or a local "
        "folder (default openai/clip-vit-base-patch32)",
    )
    group.add_argument(
        "--rubric", metavar="FILE", help="a text file replacing the judge's default rubric"
    )
    group.add_argument(
        "--detail",
        choices=("low", "high", "auto"),
        help="image detail the judge is sent at (default low: 85 tokens)",
    )
    if not for_resume:
        group.add_argument(
            "--threshold",
            type=float,
            default=None,
            metavar="S",
            help="images scoring below this are flagged (default 6)",
        )
        group.add_argument(
            "--rescore", action="store_true", help="score again images this scorer already scored"
        )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score every saved image against its prompt (a judge model or CLIP)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", help="the run directory (holds run.json)")
    add_scorer_arguments(parser)
    add_session_arguments(parser, resume=True)
    parser.set_defaults(func=cmd_score)


def scorer_spec(
    args: argparse.Namespace, saved: dict[str, Any] | None, recorded: dict[str, Any]
) -> Any:
    """The scorer the flags ask for; without --judge/--scorer, the last `score`'s."""
    from batchgen.quality.clip import DEFAULT_CLIP_MODEL
    from batchgen.quality.judge import DEFAULT_RUBRIC
    from batchgen.quality.session import DEFAULT_THRESHOLD, ScorerSpec

    kind = args.scorer or ("judge" if args.judge else None)
    threshold = getattr(args, "threshold", None)
    if kind is None:
        if saved is None:
            msg = "say how to score: --judge MODEL (a vision chat model) or --scorer clip"
            raise UsageError(msg)
        spec = ScorerSpec.from_saved(saved)
        return _with(spec, threshold=threshold) if threshold is not None else spec
    if kind == "judge" and not args.judge:
        raise UsageError("--scorer judge needs --judge MODEL (e.g. --judge gpt-4o-mini)")
    rubric = DEFAULT_RUBRIC
    if args.rubric:
        try:
            rubric = Path(args.rubric).read_text("utf-8").strip()
        except OSError as exc:
            raise UsageError(f"--rubric {args.rubric}: {exc.strerror or exc}") from exc
        if not rubric:
            raise UsageError(f"--rubric {args.rubric} is empty")
    provider = args.provider or ("openai" if args.base_url else recorded.get("provider"))
    return ScorerSpec(
        kind=kind,
        model=(args.clip_model or DEFAULT_CLIP_MODEL) if kind == "clip" else args.judge,
        rubric=rubric,
        detail=args.detail or "low",
        provider=provider,
        base_url=args.base_url or (recorded.get("base_url") if provider != "sim" else None),
        api_key_env=args.api_key_env or recorded.get("api_key_env"),
        threshold=threshold if threshold is not None else DEFAULT_THRESHOLD,
    )


def _with(spec: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(spec, **changes)


def local_scorer_or_usage_error(spec: Any) -> Any:
    if spec.kind != "clip":
        return None
    from batchgen.quality.clip import ClipUnavailable
    from batchgen.quality.session import load_local_scorer

    try:
        return load_local_scorer(spec)
    except ClipUnavailable as exc:
        raise UsageError(str(exc)) from exc


def require_judge_price(spec: Any, prices: Any, max_cost: float | None) -> None:
    """--max-cost cannot bound what it cannot price: a judge must be in the price table."""
    if max_cost is None or spec.kind != "judge":
        return
    entry = prices.get(spec.model)
    if entry is None or entry.billing != "chat":
        msg = (
            f"--max-cost needs the judge's price: {spec.model!r} is not a chat model of the "
            'price table; add it with --prices FILE ([models."NAME"] billing = "chat", '
            "input_per_1m, output_per_1m, source, as_of)"
        )
        raise UsageError(msg)


def spent_total(run_dir: Path) -> float:
    import pyarrow.compute as pc

    from batchgen.quality.store import scores_cost
    from batchgen.runlog.reader import read_log

    table = read_log(run_dir, ["cost_usd"])
    logged = float(pc.sum(table["cost_usd"]).as_py() or 0.0) if table.num_rows else 0.0
    return logged + scores_cost(run_dir)


def cmd_score(args: argparse.Namespace) -> int:
    prefer_system_allocator()
    import anyio

    from batchgen.cli.prepare import load_prices
    from batchgen.cli.run import make_sim_config
    from batchgen.cli.session import make_console
    from batchgen.quality.session import score_run
    from batchgen.quality.store import load_scorer
    from batchgen.runlog.rundir import RunDir, RunDirError

    console = make_console()
    err = make_console(stderr=True)
    rundir = RunDir(args.run_dir)
    try:
        with rundir.lock():
            manifest = rundir.load()
            recorded = manifest.get("settings") or {}
            spec = scorer_spec(args, load_scorer(rundir.path), recorded)
            local = local_scorer_or_usage_error(spec)
            prices = load_prices(args)
            require_judge_price(spec, prices, args.max_cost)
            cap = None
            if args.max_cost is not None:
                cap = max(0.0, args.max_cost - spent_total(rundir.path))
            sim_config = make_sim_config(args) if spec.provider == "sim" else None
            console.print(f"scoring {rundir.path} with {spec.id}")
            result = anyio.run(lambda: score_run(
                rundir.path, spec, run_id=manifest["run_id"], values=pool_values(args),
                prices=prices, cap_usd=cap, sim_config=sim_config, local_scorer=local,
                rescore=args.rescore, console=console, quiet=args.quiet,
            ))  # fmt: skip
    except RunDirError as exc:
        err.print(f"batchgen score: {exc}", markup=False)
        return EXIT_USAGE
    except UsageError as exc:
        err.print(f"batchgen score: {exc}", markup=False)
        return EXIT_USAGE
    print_score_summary(console, rundir.path, spec, result)
    if result.stop_reason is not None:
        console.print(f"[yellow]stopped ({result.stop_reason.value}): {result.stop_message}[/]")
        console.print(f"to score the rest: batchgen score {rundir.path}")
        return EXIT_STOPPED
    return EXIT_FAILED if result.tally.failed else EXIT_OK


def print_score_summary(console: Any, run_dir: Path, spec: Any, result: Any) -> None:
    from batchgen.quality.regenerate import best_per_job, weakest

    t = result.tally
    console.print(
        f"scored {t.scored} image(s)"
        + (f", {result.already} already scored" if result.already else "")
        + (f", {t.failed} could not be scored" if t.failed else "")
        + (f", {t.skipped} left for the next `score`" if t.skipped else "")
        + (f"; mean {result.mean:.2f}" if result.mean is not None else "")
        + f"; scoring cost ${t.cost_usd:.4f} ({t.attempts} request(s), {t.retries} retried)"
    )
    if result.possibly_twice:
        console.print(
            f"[yellow]{result.possibly_twice} image(s) were in flight when a `score` of this run "
            "was killed: they may have been judged (and billed) twice[/]"
        )
    best = best_per_job(run_dir, spec.id)
    below = {
        j: b for j, b in best.items() if b["score"] is not None and b["score"] < spec.threshold
    }
    console.print(
        f"jobs whose best image scores below {spec.threshold:g}: {len(below)} of {len(best)}"
    )
    best_paths = {b["image_path"] for b in best.values()}
    shown = [r for r in weakest(run_dir, spec.id, 10**9) if r["image_path"] in best_paths][:5]
    if shown:
        console.print("weakest jobs (their best image):")
    for row in shown:
        console.print(
            f"  {row['score']:>4.1f}  {row['image_path']}  {row['reasons']}", markup=False
        )
    if below:
        console.print(
            f"regenerate them: batchgen resume {run_dir} --regenerate-below {spec.threshold:g}"
        )
