"""The Python API: run a batch from a notebook or a pipeline without shelling out.

    import batchgen
    result = batchgen.run("jobs.jsonl", run_dir="runs/x", rpm=300, max_cost=5)
    result = await batchgen.run_async(jobs, run_dir="runs/y")   # inside an event loop
    batchgen.resume("runs/x")
    batchgen.report("runs/x")

Keyword arguments are named like the CLI's flags (``rpm``, ``concurrency``, ``max_cost``,
``base_url``, ``timeout``, ``max_attempts`` ...); what is not given comes from
``batchgen.config``'s table (and, on resume, from run.json). Nothing is printed: pass
``progress=`` for the pool's progress and ``on_message=`` for the lines the CLI would print.
Errors raised before anything is sent are ``batchgen.UsageError`` and its subclasses; a
session that stopped early (auth, quota, budget, disk) is a result whose ``stop_reason`` is
set — ``result.raise_for_stop()`` raises ``batchgen.RunStopped`` for it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import pyarrow.compute as pc

from batchgen.apiargs import (
    check_callback,
    cluster_executor,
    config_of,
    flags_of_keywords,
    job_records,
    no_running_loop,
    ray_address,
    run_dir_arg,
    write_jobs_file,
)
from batchgen.config import RunConfig
from batchgen.errors import ConfigError, ErrorClass, RunDirError, RunStopped
from batchgen.money.spent import spent
from batchgen.runlog.reader import read_log
from batchgen.runlog.rundir import RunDir
from batchgen.runlog.state import DONE, FAILED, job_states
from batchgen.session.observer import Silent

if TYPE_CHECKING:
    from batchgen.jobs.model import Job
    from batchgen.reports import Report
    from batchgen.runner.pool import PoolTally
    from batchgen.session.outcome import Outcome

JobsSource = str | Path | Iterable["Mapping[str, Any] | Job"]
_log = logging.getLogger("batchgen")


@dataclass(frozen=True, slots=True)
class Progress:
    """What ``progress=`` is called with as jobs finish (this session's counts)."""

    done: int  # jobs finished (succeeded or failed for good)
    total: int  # jobs this session runs
    succeeded: int
    failed: int
    images: int
    spent_usd: float  # this session's cost


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run stands after ``run()`` or ``resume()``: counts over the whole run directory,
    and how the last session ended."""

    run_dir: Path
    run_id: str
    session: int  # the last session's number in run.json (0: none ran)
    succeeded: int  # jobs with a successful result
    failed: int  # jobs failed for good (content policy, bad request)
    pending: int  # jobs without a result: `batchgen.resume(run_dir)` runs them
    images: int  # images saved
    spent_usd: float  # what the run's requests cost (its log), all sessions
    ending: str  # the last session's ending in run.json: completed, failed_jobs, stopped_*...
    stop_reason: str | None  # an ErrorClass value (auth, quota, budget, disk ...) or None
    stop_message: str
    exit_code: int  # what `batchgen run`/`resume` would exit with: 0, 1 or 3
    limits: Mapping[str, Any] | None  # what the autopilot learned (rate, in-flight limit)

    @property
    def ok(self) -> bool:
        """Every job succeeded."""
        return self.exit_code == 0

    def raise_for_stop(self) -> RunResult:
        """Raise RunStopped if the session stopped early; else return the result."""
        if self.stop_reason is not None:
            raise RunStopped(ErrorClass(self.stop_reason), self.stop_message, str(self.run_dir))
        return self


def run(
    jobs: JobsSource,
    *,
    run_dir: str | Path | None = None,
    progress: Callable[[Progress], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    sim: Mapping[str, Any] | None = None,
    ray: str | bool | None = None,
    **flags: Any,
) -> RunResult:
    """Run every job into a new run directory; blocks until the session ends.

    ``jobs``: a job file (JSONL, CSV, text, YAML spec ...) or an iterable of job dicts /
    ``Job`` objects (written to ``RUN_DIR/jobs.jsonl`` first, so ``resume`` can read them).
    ``provider="sim"`` runs against the built-in simulator, ``sim={...}`` its options
    (``{"rpm": 60, "faults": "server=0.1"}``, named like ``batchgen sim``'s flags).
    ``ray=True`` (a cluster of this machine) or ``ray="HOST:PORT"`` spreads the run over a Ray
    cluster, as ``--ray`` does (docs/cluster.md)."""
    # lazy: the session (aiohttp, tenacity, the providers: ~180 modules) is run()'s and
    # resume()'s; report() imports this module too and never needs it
    from batchgen.session.start import default_run_dir, start_run

    no_running_loop("run")
    address = ray_address(ray)
    cfg = config_of(flags, sim)
    target = run_dir_arg(run_dir)
    observer = _observer(progress, on_message)
    write_jobs = None
    if isinstance(jobs, str | Path):
        job_file = Path(jobs)
    else:
        if target is None:
            raise ConfigError("jobs given as objects need run_dir= (their file is kept there)")
        records = job_records(jobs)
        job_file = target / "jobs.jsonl"

        def write_jobs() -> None:  # under the run directory's lock (start_run)
            write_jobs_file(records, job_file)

    if target is None:
        target = default_run_dir(job_file)
    cluster = None
    if address is not None:
        cluster = cluster_executor(address, cfg)
    outcome = start_run(
        str(job_file),
        cfg,
        run_dir=target,
        observer=observer,
        handle_signals=False,
        write_jobs=write_jobs,
        execute_plan=cluster,
    )
    return _result(target, outcome)


async def run_async(
    jobs: JobsSource,
    *,
    run_dir: str | Path | None = None,
    progress: Callable[[Progress], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    sim: Mapping[str, Any] | None = None,
    **flags: Any,
) -> RunResult:
    """``run()`` for code already inside an event loop (asyncio or trio, through anyio): the
    session runs in a worker thread with its own loop, so the caller's loop stays free.
    ``progress`` and ``on_message`` are called from that thread."""
    call = functools.partial(
        run, jobs, run_dir=run_dir, progress=progress, on_message=on_message, sim=sim, **flags
    )
    return await anyio.to_thread.run_sync(call)


def resume(
    run_dir: str | Path,
    *,
    progress: Callable[[Progress], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    sim: Mapping[str, Any] | None = None,
    ray: str | bool | None = None,
    **flags: Any,
) -> RunResult:
    """Finish the rest of a run: every job without a successful result (``retry_failed=True``
    also those that failed for good). Settings come from run.json; keyword arguments given
    here override them for this session. ``ray=`` runs the rest over a Ray cluster, as
    ``run``'s does."""
    # lazy: the session (aiohttp, tenacity, the providers) is run()'s and resume()'s; report()
    # imports this module too and never needs it
    from batchgen.session.resume import resume_run

    no_running_loop("resume")
    if run_dir_arg(run_dir) is None:
        raise ConfigError("resume needs the run directory: resume(run_dir)")
    address = ray_address(ray)
    given = flags_of_keywords(flags, sim)
    RunConfig.build(given)  # a bad value is a ConfigError now, before the lock is taken
    observer = _observer(progress, on_message)
    cluster = None
    if address is not None:
        cluster = cluster_executor(address, rest=True)
    outcome = resume_run(
        run_dir, given, observer=observer, handle_signals=False, execute_plan=cluster
    )
    return _result(Path(run_dir), outcome)


async def resume_async(
    run_dir: str | Path,
    *,
    progress: Callable[[Progress], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    sim: Mapping[str, Any] | None = None,
    **flags: Any,
) -> RunResult:
    """``resume()`` for code inside an event loop (a worker thread, as ``run_async``)."""
    call = functools.partial(
        resume, run_dir, progress=progress, on_message=on_message, sim=sim, **flags
    )
    return await anyio.to_thread.run_sync(call)


def report(
    run_dir: str | Path,
    *,
    compare_to: str | Path | None = None,
    image_checks: bool = True,
) -> Report:
    """The run's report (what `batchgen report` renders), as a typed :class:`Report`:
    ``.run`` holds the sections (batchgen.reports.model), ``.to_json()``, ``.to_text()``,
    ``.to_markdown()`` and ``.to_html()`` render it, ``.write(fmt, out)`` saves it. With
    ``compare_to``, the two runs compared (``run_dir`` as A)."""
    # lazy: the report model and its figures (matplotlib, ~190 modules) are report()'s alone;
    # run() and resume() never load them
    from batchgen.reports import build_report

    for d in (run_dir, compare_to):
        if d is None and d is compare_to:
            continue
        path = run_dir_arg(d)
        if path is None or not path.is_dir():
            raise RunDirError(
                f"{d} is not a run directory (no such folder); pass the folder holding "
                "run.json and log/ (the run_dir given to batchgen.run)"
            )
    return build_report(run_dir, compare_to=compare_to, image_checks=image_checks)


class _ApiObserver(Silent):
    """Silent, but for the progress callback and the messages asked for."""

    def __init__(
        self, progress: Callable[[Progress], None] | None, on_message: Callable[[str], None] | None
    ) -> None:
        super().__init__()
        self.user_progress, self.on_message = progress, on_message
        self.progress_error: Exception | None = None

    def say(self, text: str, style: str | None = None) -> None:
        if self.on_message is not None:
            self.on_message(text)

    def warn(self, text: str) -> None:
        self.say(text)

    def progress(self, total: int, budget: Any, status: Callable[[], str]) -> Any:
        user = self.user_progress
        if user is None:
            return super().progress(total, budget, status)

        def update(t: PoolTally) -> None:
            if self.progress_error is not None:
                return
            try:
                user(Progress(t.finished, total, t.ok_jobs, t.failed_jobs, t.images, t.cost_usd))
            except Exception as exc:  # the caller's bug must not abort a paid run
                self._progress_failed(exc)

        return contextlib.nullcontext(update)

    def _progress_failed(self, exc: Exception) -> None:
        """Said once (a warning and on_message); the run goes on."""
        if self.progress_error is not None:
            return
        self.progress_error = exc
        text = (
            f"the progress callback raised {type(exc).__name__}: {exc}; the run goes on "
            "without calling it again"
        )
        _log.warning(text)
        self.say(text)
        self.user_progress = None


def _observer(
    progress: Callable[[Progress], None] | None, on_message: Callable[[str], None] | None
) -> _ApiObserver:
    check_callback("progress", progress)
    check_callback("on_message", on_message)
    return _ApiObserver(progress, on_message)


def _result(run_dir: Path, outcome: Outcome) -> RunResult:
    """Counts over the whole run directory, and the last session's ending from run.json."""
    rundir = RunDir(run_dir)
    manifest = rundir.manifest()
    counts = job_states(run_dir, with_inflight=False).counts()
    last = manifest.last_session
    result = outcome.result
    reason = result.stop_reason if result is not None else None
    return RunResult(
        run_dir=run_dir,
        run_id=str(manifest.run_id),
        session=last.session if last else 0,
        succeeded=counts[DONE],
        failed=counts[FAILED],
        pending=max((manifest.jobs or 0) - counts[DONE] - counts[FAILED], 0),
        images=_images(rundir),
        spent_usd=spent(run_dir).images_usd,
        ending=str(last.how) if last else "",
        stop_reason=reason.value if reason else None,
        stop_message=result.stop_message if result is not None else "",
        exit_code=outcome.exit_code,
        limits=last.autopilot if last else None,
    )


def _images(rundir: Any) -> int:

    table = read_log(rundir.path, ["image_paths"])
    if not table.num_rows:
        return 0
    return int(pc.sum(pc.list_value_length(table["image_paths"])).as_py() or 0)
