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

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.config import RunConfig
from batchgen.errors import ConfigError, ErrorClass, RunDirError, RunStopped
from batchgen.session.observer import Silent

if TYPE_CHECKING:
    from batchgen.jobs.model import Job
    from batchgen.reports import Report
    from batchgen.runner.pool import PoolTally
    from batchgen.session.outcome import Outcome

JobsSource = str | Path | Iterable["Mapping[str, Any] | Job"]
# the keyword arguments run() and resume() take, by their CLI flag's name
_FLAGS = frozenset({
    "rpm", "ipm", "concurrency", "timeout", "max_attempts", "grace", "adaptive",
    "stall_timeout", "max_pause", "image_checks", "model", "size", "quality", "n",
    "provider", "base_url", "api_key_env", "api_key", "providers", "prices", "max_cost",
    "price_per_image", "via", "retry_failed", "max_jobs",
    "ledger", "project", "monthly_budget", "project_budget", "on_budget",
})  # fmt: skip


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
    **flags: Any,
) -> RunResult:
    """Run every job into a new run directory; blocks until the session ends.

    ``jobs``: a job file (JSONL, CSV, text, YAML spec ...) or an iterable of job dicts /
    ``Job`` objects (written to ``RUN_DIR/jobs.jsonl`` first, so ``resume`` can read them).
    ``provider="sim"`` runs against the built-in simulator, ``sim={...}`` its options
    (``{"rpm": 60, "fail_rate": 0.1}``, named like ``batchgen sim``'s flags)."""
    from batchgen.session.start import default_run_dir, start_run

    cfg = _config(flags, sim)
    target = Path(run_dir) if run_dir is not None else None
    job_file = _job_file(jobs, target)
    if target is None:
        target = default_run_dir(job_file)
    observer = _observer(progress, on_message)
    outcome = start_run(str(job_file), cfg, run_dir=target, observer=observer,
                        handle_signals=False)  # fmt: skip
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
    import anyio.to_thread

    call = functools.partial(run, jobs, run_dir=run_dir, progress=progress,
                             on_message=on_message, sim=sim, **flags)  # fmt: skip
    return await anyio.to_thread.run_sync(call)


def resume(
    run_dir: str | Path,
    *,
    progress: Callable[[Progress], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    sim: Mapping[str, Any] | None = None,
    **flags: Any,
) -> RunResult:
    """Finish the rest of a run: every job without a successful result (``retry_failed=True``
    also those that failed for good). Settings come from run.json; keyword arguments given
    here override them for this session."""
    from batchgen.session.resume import resume_run

    given = _flags(flags, sim)
    RunConfig.build(given)  # a bad value is a ConfigError now, before the lock is taken
    observer = _observer(progress, on_message)
    outcome = resume_run(run_dir, given, observer=observer, handle_signals=False)
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
    import anyio.to_thread

    call = functools.partial(resume, run_dir, progress=progress, on_message=on_message,
                             sim=sim, **flags)  # fmt: skip
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
    from batchgen.reports import build_report

    return build_report(run_dir, compare_to=compare_to, image_checks=image_checks)


# ---- helpers ----------------------------------------------------------------------------
def _config(flags: Mapping[str, Any], sim: Mapping[str, Any] | None) -> RunConfig:
    return RunConfig.build(_flags(flags, sim))


def _flags(flags: Mapping[str, Any], sim: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keyword arguments as the flags they stand for (``sim`` as ``sim_*`` options)."""
    unknown = sorted(set(flags) - _FLAGS)
    if unknown:
        msg = (
            f"unknown keyword argument(s) {', '.join(unknown)}; known: {', '.join(sorted(_FLAGS))}"
        )
        raise ConfigError(msg)
    given = dict(flags)
    if given.get("api_key") is not None and given.get("providers"):
        raise ConfigError("api_key goes with one endpoint: a providers file names its variables")
    for name, value in (sim or {}).items():
        given["sim_" + name.replace("-", "_")] = value
    if sim and given.get("provider") is None:
        given["provider"] = "sim"
    return given


def _job_file(jobs: JobsSource, run_dir: Path | None) -> Path:
    """A path as given; an iterable of jobs written to ``RUN_DIR/jobs.jsonl``."""
    if isinstance(jobs, str | Path):
        return Path(jobs)
    if run_dir is None:
        raise ConfigError("jobs given as objects need run_dir= (their file is kept there)")
    if (run_dir / "run.json").exists():
        msg = f"{run_dir / 'run.json'} exists: {run_dir} already holds a run (resume it)"
        raise RunDirError(msg)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "jobs.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for job in jobs:
            out.write(json.dumps(_job_record(job), ensure_ascii=False) + "\n")
    return path


def _job_record(job: Mapping[str, Any] | Job) -> dict[str, Any]:
    if isinstance(job, Mapping):
        return dict(job)
    if job.inputs:
        raise ConfigError(f"job {job.id}: an edit's input images go in a job file, not a Job")
    return {"id": job.id, **job.body}


class _ApiObserver(Silent):
    """Silent, but for the progress callback and the messages asked for."""

    def __init__(
        self, progress: Callable[[Progress], None] | None, on_message: Callable[[str], None] | None
    ) -> None:
        super().__init__()
        self.user_progress, self.on_message = progress, on_message

    def say(self, text: str, style: str | None = None) -> None:
        if self.on_message is not None:
            self.on_message(text)

    def warn(self, text: str) -> None:
        self.say(text)

    def progress(self, total: int, budget: Any, status: Callable[[], str]) -> Any:
        import contextlib

        user = self.user_progress
        if user is None:
            return super().progress(total, budget, status)

        def update(t: PoolTally) -> None:
            user(Progress(t.finished, total, t.ok_jobs, t.failed_jobs, t.images, t.cost_usd))

        return contextlib.nullcontext(update)


def _observer(
    progress: Callable[[Progress], None] | None, on_message: Callable[[str], None] | None
) -> _ApiObserver:
    return _ApiObserver(progress, on_message)


def _result(run_dir: Path, outcome: Outcome) -> RunResult:
    """Counts over the whole run directory, and the last session's ending from run.json."""
    from batchgen.runlog.rundir import RunDir
    from batchgen.runlog.state import DONE, FAILED, job_states
    from batchgen.session.resume import spent_so_far

    rundir = RunDir(run_dir)
    manifest = rundir.manifest()
    counts = job_states(run_dir, with_inflight=False).counts()
    last = manifest.last_session
    result = outcome.result
    reason = result.stop_reason if result is not None else None
    return RunResult(
        run_dir=run_dir, run_id=str(manifest.run_id), session=last.session if last else 0,
        succeeded=counts[DONE], failed=counts[FAILED],
        pending=max((manifest.jobs or 0) - counts[DONE] - counts[FAILED], 0),
        images=_images(rundir), spent_usd=spent_so_far(rundir),
        ending=str(last.how) if last else "", stop_reason=reason.value if reason else None,
        stop_message=result.stop_message if result is not None else "",
        exit_code=outcome.exit_code, limits=last.autopilot if last else None,
    )  # fmt: skip


def _images(rundir: Any) -> int:
    import pyarrow.compute as pc

    from batchgen.runlog.reader import read_log

    table = read_log(rundir.path, ["image_paths"])
    if not table.num_rows:
        return 0
    return int(pc.sum(pc.list_value_length(table["image_paths"])).as_py() or 0)
