"""`batchgen plan`: check a job file and quote it, without sending anything."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rich.console import Console

from batchgen.cli.common import flags_of
from batchgen.cli.money_args import prices_from_args
from batchgen.cli.plan import EXIT_OK, EXIT_PROBLEMS, READS, default_model_note
from batchgen.cli.planvars import print_tally
from batchgen.cli.quote import quote_renderable, usd
from batchgen.cli.stdin import StdinError, read_stdin, save_stdin
from batchgen.config import RunConfig
from batchgen.errors import ConfigError
from batchgen.jobs.models import model_typos
from batchgen.money import quote_to_dict
from batchgen.money.load import PricesError
from batchgen.money.plan import plan_file
from batchgen.numbers import for_json, plural

if TYPE_CHECKING:
    from batchgen.jobs import Problem
    from batchgen.money.plan import Plan
    from batchgen.money.quote import Quote


def cmd_plan(args: argparse.Namespace, *, stdout: TextIO | None = None) -> int:
    if args.jobfile != "-":
        return _plan(args, stdout)

    try:
        data = read_stdin()
    except StdinError as exc:
        print(f"batchgen plan: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    with tempfile.TemporaryDirectory(prefix="batchgen-stdin-") as folder:
        args.jobfile = str(save_stdin(Path(folder), data))
        return _plan(args, stdout)


def _plan(args: argparse.Namespace, stdout: TextIO | None) -> int:
    out = stdout or sys.stdout
    try:
        # the same settings a run of these flags would have (defaults and checks)
        cfg = RunConfig.build(flags_of(args, READS))
        prices = prices_from_args(args)
        plan = plan_file(
            args.jobfile,
            prices,
            dict(cfg.job_defaults),
            max_jobs=cfg.max_jobs,
            max_problems=args.max_problems,
            assume_latency=cfg.batch.assume_latency,
            rpm=cfg.pool.rpm,
            ipm=cfg.pool.ipm,
            concurrency=cfg.pool.concurrency_cap,
            via=cfg.via or "live",
        )
    except (PricesError, ConfigError, ValueError) as exc:
        print(f"batchgen plan: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    if plan.refused is not None or plan.check is None:
        print(plan.refused, file=out)
        return EXIT_PROBLEMS
    # a model one typo from a priced one: plan does not know the endpoint, so a warning
    quoted = plan.check.quote
    unknown = quoted.unknown_models if quoted is not None else ()
    typos = model_typos(args.jobfile, cfg.job_defaults, unknown, prices.models, refused=None)
    # and the fields the API does not know (sent as is), once per field with its count
    warnings = [str(w) for w in plan.check.validation.warnings] + [str(t) for t in typos]
    if args.output_format == "json":
        _print_json(out, args, plan, warnings)
    else:
        _print_plan(out, args, plan)
        for warning in warnings:
            print(f"warning: {warning}", file=out)
    return EXIT_OK if plan.ok else EXIT_PROBLEMS


def _print_plan(out: TextIO, args: argparse.Namespace, plan: Plan) -> None:
    check = plan.check
    assert check is not None
    result, validation = check.quote, check.validation
    _print_text(out, args, validation.problems, check.model_problems, check.problem_count, result)
    if check.batch_quote is not None and result is not None:
        print(_batch_sentence(result, check.batch_quote), file=out)
    if result is not None:
        if validation.format == "spec":
            jobs, images = plural(validation.jobs, "job"), plural(validation.images, "image")
            print(f"spec: {jobs}, {images}", file=out)
        print_tally(plan.tally, out)


def _print_text(
    out: TextIO,
    args: argparse.Namespace,
    shape: list[Problem],
    model_problems: list[Problem],
    total: int,
    result: Quote | None,
) -> None:
    # problems go out verbatim: rich markup would eat the [brackets] in user text
    for problem in shape + model_problems:
        print(problem, file=out)
    shown = len(shape) + len(model_problems)
    if total > shown:
        more = plural(total - shown, "more problem")
        print(f"… and {more} (--max-problems to see more)", file=out)
    if shape and result is None:
        print(
            f"{plural(total, 'problem')}: fix the job file first; model checks and the quote need "
            "every line readable.",
            file=out,
        )
        return
    if result is None:
        return

    console = Console(file=out, width=None if out.isatty() else 110)
    console.print(quote_renderable(result))
    if not getattr(args, "model", None):
        print(default_model_note(), file=out)
    if args.max_cost is not None:
        print(_cap_sentence(result, args.max_cost), file=out)
    if total:
        print(f"{plural(total, 'problem')} found: the jobs above would be refused (400).", file=out)


def _batch_sentence(live: Quote, batch: Quote) -> str:
    """The Batch API's quote beside the live one."""
    span = (
        usd(batch.expected_usd)
        if batch.low_usd == batch.high_usd
        else (f"{usd(batch.expected_usd)} ({usd(batch.low_usd)}–{usd(batch.high_usd)})")
    )
    # like with like: the live total of the same jobs, without the models batch cannot price
    missing = [m for m in batch.unknown_models if m not in live.unknown_models]
    live_same = live.expected_without(batch.unknown_models)
    share = f", {batch.expected_usd / live_same:.0%} of live" if live_same else ""
    same = " for the same jobs" if missing else ""
    text = (
        f"--via batch: {span} expected{share} (live{same}: {usd(live_same)}); "
        "results within 24 h, not minutes"
    )
    if missing:
        text += (
            f"; no Batch API price for {', '.join(missing)} (left out of both totals; "
            "live it costs as quoted above)"
        )
    return text


def _cap_sentence(result: Quote, cap: float) -> str:
    if result.high_usd <= cap:
        dearest = usd(result.high_usd)
        return f"--max-cost {usd(cap)}: the whole batch fits even at its dearest ({dearest})."
    if result.expected_usd <= cap:
        return (
            f"--max-cost {usd(cap)}: the expected cost fits, but the cap reserves each job's worst "
            "case, so the run may stop early; resume with a higher --max-cost."
        )
    share = cap / result.expected_usd if result.expected_usd else 0.0
    return (
        f"--max-cost {usd(cap)}: covers about {share:.0%} of the expected "
        f"{usd(result.expected_usd)}; the run will stop with the rest pending."
    )


def _print_json(out: TextIO, args: argparse.Namespace, plan: Plan, warnings: list[str]) -> None:
    check = plan.check
    assert check is not None
    problems = [*check.validation.problems, *check.model_problems]
    result = check.quote
    document = {
        "file": args.jobfile,
        "problems": [{"file": p.file, "line": p.line, "message": p.message} for p in problems],
        "problem_count": check.problem_count,
        "warnings": warnings,
        "quote": quote_to_dict(result) if result is not None else None,
        "max_cost": args.max_cost,
        **plan.tally.to_dict(),
    }
    if check.batch_quote is not None:
        document["batch_quote"] = quote_to_dict(check.batch_quote)

    json.dump(for_json(document), out, indent=2, ensure_ascii=False)
    out.write("\n")
