"""``batchgen run JOBFILE``: validate, quote, then run every job into a new run directory.

Exit status: 0 every job succeeded; 1 some jobs failed; 2 bad usage or job file (nothing was
sent); 3 stopped early with jobs pending (auth, quota, budget, interrupt) — `batchgen resume`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.cli.common import (
    EXIT_USAGE,
    UsageError,
    add_job_defaults,
    add_session_arguments,
    pool_values,
    prefer_system_allocator,
    providers_connection,
    resolve_connection,
)

if TYPE_CHECKING:
    from batchgen.runlog.jobindex import IndexBuilder
    from batchgen.runlog.rundir import RunDir


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a job file of prompts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "jobfile", help="JSONL, OpenAI batch JSONL, CSV, plain text job file or YAML spec"
    )
    parser.add_argument(
        "--max-jobs",
        metavar="N",
        type=int,
        help="refuse (exit 2, nothing sent) a job file or spec of more than N jobs",
    )
    parser.add_argument(
        "--run-dir", help="where images, log and run.json go (default runs/<stem>-<UTC time>)"
    )
    add_job_defaults(parser)
    add_session_arguments(parser, resume=False)
    from batchgen.cli.batch import add_batch_arguments

    add_batch_arguments(parser, resume=False)
    parser.set_defaults(func=cmd_run)


def default_run_dir(jobfile: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path("runs") / f"{Path(jobfile).stem}-{stamp}"


def sim_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k.startswith("sim_")}


def cmd_run(args: argparse.Namespace) -> int:
    # what a run needs (anyio, aiohttp, pyarrow via the pool and the log) loads now, not when
    # the parser is built for another command
    prefer_system_allocator()
    import anyio

    from batchgen.cli.prepare import (
        JobFileProblems,
        check_job_file,
        load_prices,
        make_budget,
        show_quote_and_confirm,
    )
    from batchgen.cli.session import SessionPlan, execute, finish, make_console
    from batchgen.jobs import iter_jobs
    from batchgen.runlog.jobindex import IndexBuilder
    from batchgen.runlog.rundir import RunDir, RunDirError, redact_argv

    console = make_console()
    err = make_console(stderr=True)
    from batchgen.cli.planvars import too_many_jobs

    if refused := too_many_jobs(args.jobfile, args.max_jobs):
        err.print(refused[0], markup=False)
        return EXIT_USAGE
    via = args.via or "live"
    try:
        if via == "live" and (args.detach or args.deadline is not None):
            raise UsageError("--detach and --deadline go with --via batch")
        routed = providers_connection(args)
        connection, endpoints = routed or (
            resolve_connection(args.provider, args.base_url, args.api_key_env),
            None,
        )
        if via == "batch" and endpoints:
            raise UsageError(
                "--via batch goes to one OpenAI endpoint: drop --providers, or "
                "run the batch with --base-url / --api-key-env"
            )
        if args.detach and connection.provider == "sim":
            raise UsageError(
                "--detach needs a provider that outlives this process: the "
                "in-process simulator stops with it (serve one: batchgen sim)"
            )
        prices = load_prices(args)
        if via == "batch" and _has_edits(args.jobfile):
            raise UsageError("edits (jobs with image/images/mask) go through the live API "
                             "only: run them without --via batch")  # fmt: skip
        if (
            endpoints
            and any(ep.protocol not in ("openai", "azure") for ep in endpoints)
            and (_has_edits(args.jobfile))
        ):
            raise UsageError("edits (jobs with image/images/mask) are sent by the openai and "
                             "azure protocols only: keep only such endpoints in --providers")  # fmt: skip
        if via == "batch":
            from batchgen.money.batchrate import batch_table

            prices = batch_table(prices)  # quote, budget and costs at the batch rate
        defaults = {k: getattr(args, k) for k in ("model", "size", "quality", "n")}
        values = pool_values(args)
        index = IndexBuilder()
        checked = check_job_file(
            args.jobfile,
            defaults,
            prices,
            rpm=values["rpm"],
            ipm=values["ipm"],
            concurrency=values["concurrency"],
            index=index,
        )
        if args.max_jobs is not None and checked.jobs > args.max_jobs:
            msg = f"{args.jobfile}: {checked.jobs:,} jobs, more than --max-jobs {args.max_jobs:,}"
            raise UsageError(msg)
        if endpoints:
            check_served(endpoints, checked)
        budget = make_budget(args, prices, checked)
        sim_config = make_sim_config(args) if connection.provider == "sim" else None
    except JobFileProblems as exc:
        for line in exc.lines:
            err.print(line, markup=False)
        err.print("nothing was sent: fix the job file and run again")
        return EXIT_USAGE
    except UsageError as exc:
        err.print(f"batchgen run: {exc}", markup=False)
        return EXIT_USAGE
    if not show_quote_and_confirm(console, args, checked, args.quiet):
        return EXIT_USAGE
    rundir = RunDir(args.run_dir or default_run_dir(args.jobfile))
    settings = {
        "defaults": defaults,
        "pool": values,
        "provider": connection.provider,
        "base_url": connection.base_url,
        "api_key_env": connection.key_env,
        "sim": sim_settings(args) if connection.provider == "sim" else None,
        "prices": str(Path(args.prices).resolve()) if args.prices else None,
        "max_cost": args.max_cost,
        "price_per_image": args.price_per_image,
        "via": via,
    }
    if via == "batch":
        from batchgen.cli.batch import batch_settings

        settings["batch"] = batch_settings(args)
    if endpoints:
        from batchgen.cli.providers import describe

        settings["endpoints"] = describe(endpoints)  # names, URLs, key variables: no key
        settings["providers_file"] = str(Path(args.providers).resolve())
    try:
        rundir.create(args.jobfile, checked.sha256, checked.jobs, checked.images, settings)
        _store_index(rundir, index, checked.sha256, defaults, args.jobfile)
        with rundir.lock():
            manifest = rundir.load()
            session = rundir.begin_session({}, redact_argv(sys.argv))
            console.print(
                f"run dir: {rundir.path}  ({checked.jobs} jobs, {checked.images} images)",
                markup=False,
            )
            plan = SessionPlan(
                rundir=rundir,
                manifest=manifest,
                session=session,
                jobs=iter_jobs(args.jobfile, defaults),
                jobs_to_run=checked.jobs,
                connection=connection,
                values=values,
                prices=prices,
                budget=budget,
                cheapest_job_usd=checked.cheapest_job_usd,
                sim_config=sim_config,
                quiet=args.quiet,
                endpoints=endpoints,
            )
            if via == "batch":
                from batchgen.cli.batch import run_via_batch

                code = run_via_batch(args, rundir, plan, settings["batch"], console, err,
                                     args.jobfile, defaults, lambda: plan.jobs)  # fmt: skip
                if code is not None:
                    return code
                # the deadline: what the batches could not finish in time goes live
                from batchgen.cli.resume import _resume_locked

                args.via, args.retry_failed = "live", False
                return _resume_locked(args, rundir, console, err)
            result = anyio.run(execute, plan, console)
    except RunDirError as exc:
        err.print(f"batchgen run: {exc}", markup=False)
        return EXIT_USAGE
    finish(console, rundir, result, budget, quiet=args.quiet)
    return result.exit_code


def _store_index(
    rundir: RunDir,
    index: IndexBuilder,
    job_sha256: str,
    defaults: dict[str, Any],
    job_file: str,
) -> None:
    """Keep the job file's index for resume; without it resume rescans the file (slower).
    Not for a file of edits: its fingerprints depend on input photos that can change."""
    import pyarrow as pa

    from batchgen.jobs.inputs import may_have_inputs
    from batchgen.runlog.jobindex import write_index

    if may_have_inputs(job_file):
        return
    try:
        write_index(rundir.state_dir, index.table(), job_sha256, defaults)
    except OSError:
        return
    # the index is on disk: hand its buffers back before the run's own allocations start
    pa.default_memory_pool().release_unused()


def _has_edits(job_file: str) -> bool:
    """Whether any job of the file is an edit (a byte scan first; a parse only if it may)."""
    from batchgen.jobs import JobFileError, iter_jobs
    from batchgen.jobs.inputs import may_have_inputs

    if not may_have_inputs(job_file):
        return False
    try:
        return any(job.inputs for job in iter_jobs(job_file))
    except (JobFileError, OSError, ValueError):
        return False  # the validation that follows reports it


def check_served(endpoints: list[Any], checked: Any) -> None:
    """Every model of the job file has an endpoint, or nothing is sent."""
    from batchgen.cli.providers import unserved

    missing = unserved(endpoints, {line.model for line in checked.quote.lines})
    if missing:
        msg = (
            f"no endpoint of the providers file serves model(s) {', '.join(missing)}: add them "
            "to an endpoint's models list"
        )
        raise UsageError(msg)


def make_sim_config(args: argparse.Namespace) -> Any:
    from batchgen.sim.cli import sim_config_from_args
    from batchgen.sim.config import SimConfigError

    try:
        return sim_config_from_args(args, prefix="sim-")
    except (SimConfigError, ValueError) as exc:
        raise UsageError(f"simulator flags: {exc}") from exc
