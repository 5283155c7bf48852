"""One session's preparation, written once for every kind of session: a new run, a resume
(live or through the Batch API), a regeneration round.

    prepare_session(cfg, job_file, ...)   connect → prices → job-file check → budget
    Prepared.confirm(observer)            the quote confirmed, or Declined (nothing sent)
    Prepared.plan(rundir, session, ...)   the SessionPlan that execute / run_batch run

The steps are one code path; what differs between callers is only when the run directory's
session begins: a new run confirms before its directory exists, while a resume begins its
session first, so that the images a crash left are adopted under it and their cost counts
in the budget (:meth:`Prepared.with_spent`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from batchgen.config import RunConfig
from batchgen.errors import UsageError
from batchgen.jobs import JobFileError, iter_jobs
from batchgen.jobs.inputs import may_have_inputs
from batchgen.jobs.model import Job
from batchgen.jobs.models import model_typos
from batchgen.money import Budget, PriceTable
from batchgen.money.batchrate import batch_table
from batchgen.provider.base import DEFAULT_BASE_URL
from batchgen.provider.endpoints import unserved
from batchgen.provider.typical import mean_of, typical_latency
from batchgen.runlog.rundir import RunDir
from batchgen.session.connect import Connection, batch_connection, connect, sim_config
from batchgen.session.observer import Observer, Silent
from batchgen.session.prepare import (
    Checked,
    JobFileProblems,
    check_job_file,
    load_prices,
    make_budget,
)

if TYPE_CHECKING:
    from batchgen.config import PoolConfig
    from batchgen.limits import RateLimiter
    from batchgen.provider.endpoints import EndpointSpec
    from batchgen.runlog.jobindex import IndexBuilder
    from batchgen.session.ledgering import LedgerLink
    from batchgen.session.outcome import SessionResult
    from batchgen.simconfig import SimConfig


class PlanExecutor(Protocol):
    """What runs a session's plan instead of this process's pool (cluster.ClusterRun: over a
    Ray cluster); ``check`` refuses, before a session is begun, what it cannot run."""

    def check(self, cfg: RunConfig) -> None: ...

    def __call__(self, plan: SessionPlan) -> SessionResult: ...


class Declined(UsageError):
    """The quote was not confirmed: nothing was sent (the CLI exits 2, silently)."""


@dataclass(frozen=True, slots=True)
class SessionPlan:
    rundir: RunDir
    manifest: dict[str, Any]
    session: int
    jobs: Iterable[Job]
    jobs_to_run: int
    connection: Connection
    pool: PoolConfig
    prices: PriceTable
    budget: Budget | None
    cheapest_job_usd: float  # below this much budget left, nothing of the batch fits
    sim_config: SimConfig | None  # when connection.provider == "sim"
    quiet: bool = False
    # a regeneration round (resume --regenerate-below): file name tag and the round header
    image_tag: str = ""
    retag: frozenset[str] = frozenset()  # edited jobs: new images under the session's tag
    extra_headers: dict[str, str] | None = None
    # `--providers FILE`: the endpoints (batchgen.provider.endpoints.EndpointSpec); None: one
    endpoints: list[EndpointSpec] | None = None
    observer: Observer = field(default_factory=Silent)
    handle_signals: bool = True  # Ctrl-C/SIGTERM stop the session (main thread only)
    ledger: LedgerLink | None = None  # bound to the run; None: the ledger is off
    # the gate-factory hook: the pool's gate made another way (a cluster shard's, scheduled by
    # the run's one limit: batchgen.cluster.gate); None: make_limiter, this process's autopilot
    gate: Callable[[PoolConfig], RateLimiter] | None = None
    images_to: str | None = None  # --images-to URL (batchgen.storage); None: RUN_DIR/images

    @property
    def run_id(self) -> str:
        return str(self.manifest["run_id"])


@dataclass(frozen=True, slots=True)
class Prepared:
    """A session checked and quoted: nothing begun in run.json, nothing sent."""

    cfg: RunConfig
    job_file: str
    connection: Connection
    endpoints: list[EndpointSpec] | None  # the providers file's (also under --via batch)
    prices: PriceTable  # at the Batch API's rate under --via batch
    checked: Checked
    budget: Budget
    # FILE:LINE notes shown before the quote is confirmed (a model name one typo from a priced
    # one, sent as written to an endpoint that may serve it)
    warnings: tuple[str, ...] = ()

    def with_spent(self, spent_before: float) -> Prepared:
        """The same session with its budget started from ``spent_before`` (USD)."""
        cfg = self.cfg
        budget = make_budget(
            cfg.max_cost, cfg.price_per_image, self.prices, self.checked, spent_before=spent_before
        )
        return dataclasses.replace(self, budget=budget)

    def confirm(self, observer: Observer) -> None:
        for warning in self.warnings:
            observer.warn(f"warning: {warning}")
        if not observer.confirm(self.checked):
            raise Declined("the quote was not confirmed: nothing was sent")

    def jobs(self, ids: Collection[str] | None = None) -> Iterable[Job]:
        """The job file's jobs, streamed (only ``ids`` when given)."""
        jobs = iter_jobs(self.job_file, dict(self.cfg.job_defaults))
        return jobs if ids is None else (job for job in jobs if job.id in ids)

    def plan(
        self,
        rundir: RunDir,
        manifest: dict[str, Any],
        session: int,
        observer: Observer,
        *,
        jobs: Iterable[Job],
        jobs_to_run: int,
        handle_signals: bool,
        ledger: LedgerLink | None = None,
        **extra: Any,
    ) -> SessionPlan:
        """The plan of the session begun as ``session``; ``extra``: SessionPlan's fields of
        a regeneration round or an edited job (image_tag, extra_headers, retag)."""
        cfg = self.cfg
        return SessionPlan(
            rundir=rundir,
            manifest=manifest,
            session=session,
            jobs=jobs,
            jobs_to_run=jobs_to_run,
            connection=self.connection,
            pool=cfg.pool,
            prices=self.prices,
            budget=self.budget,
            cheapest_job_usd=self.checked.cheapest_job_usd,
            sim_config=sim_config(cfg, self.connection),
            quiet=cfg.quiet,
            endpoints=self.endpoints,
            observer=observer,
            handle_signals=handle_signals,
            ledger=ledger,
            images_to=cfg.images_to,
            **extra,
        )


def prepare_session(
    cfg: RunConfig,
    job_file: str | Path,
    *,
    only: Collection[str] | None = None,
    index: IndexBuilder | None = None,
    spent_before: float = 0.0,
    via_batch: bool | None = None,
    check_connection: Callable[[Connection, list[Any] | None], None] | None = None,
) -> Prepared:
    """Connect, load the prices, check and quote the job file (``only``: these job ids;
    ``index``: collect every job's id there), and set up the budget from ``spent_before``.
    ``via_batch``: through the Batch API (None: as ``cfg.via`` says; a resume collecting
    open batches says so itself). ``check_connection``: the caller's own checks of where
    requests go, made first.
    Raises UsageError (JobFileProblems) with the fix; nothing is sent or written."""
    connection, endpoints = connect(cfg)
    if check_connection is not None:
        check_connection(connection, endpoints)
    prices = load_prices(cfg.prices, cfg.price_per_image)
    if cfg.via_batch if via_batch is None else via_batch:
        connection = batch_connection(connection, endpoints)  # one endpoint, its Batch API
        prices = batch_table(prices)  # quote, budget and costs at the batch rate
    # the built-in simulator's latency is known: the estimate assumes it, not a real model's
    sim = sim_config(cfg, connection)  # bad simulator options: a usage error now
    pool = cfg.pool
    checked = check_job_file(
        job_file,
        dict(cfg.job_defaults),
        prices,
        only=only,
        rpm=pool.rpm,
        ipm=pool.ipm,
        concurrency=pool.concurrency_cap,
        index=index,
        assume_latency=sim_latency(sim),
    )
    if endpoints:
        check_served(endpoints, checked)
    warnings = check_model_names(cfg, job_file, connection, endpoints, prices, checked)
    budget = make_budget(cfg.max_cost, cfg.price_per_image, prices, checked, spent_before)
    return Prepared(cfg, str(job_file), connection, endpoints, prices, checked, budget, warnings)


OPENAI_HOST = urlsplit(DEFAULT_BASE_URL).hostname


def serves_openai_models(connection: Connection) -> bool:
    """Whether requests go to OpenAI's own API or the built-in simulator (which serves OpenAI's
    models and answers 400 for others, as OpenAI does)."""
    if connection.provider == "sim":
        return True
    host = urlsplit(connection.base_url or "").hostname
    return connection.provider == "openai" and host == OPENAI_HOST


def check_model_names(
    cfg: RunConfig,
    job_file: str | Path,
    connection: Connection,
    endpoints: list[Any] | None,
    prices: PriceTable,
    checked: Checked,
) -> tuple[str, ...]:
    """A model with no price that is a near miss of a priced one ("gpt-image-l"): refused
    (JobFileProblems naming its first line) where the endpoint serves OpenAI's models, which
    would answer 400; elsewhere (names are free-form on aggregators and local servers) the
    warnings to show, naming the line."""
    unknown = checked.quote.unknown_models
    sim = sim_config(cfg, connection)
    if sim is not None:  # the simulator's extra models are served, priced or not
        unknown = tuple(m for m in unknown if m not in sim.extra_models)
    if not unknown:
        return ()
    refused = not endpoints and serves_openai_models(connection)
    typos = model_typos(job_file, cfg.job_defaults, unknown, prices.models, refused=refused)
    if typos and refused:
        raise JobFileProblems([str(p) for p in typos])
    return tuple(str(p) for p in typos)


def sim_latency(sim: SimConfig | None) -> float | Callable[[Job], float] | None:
    """What the quote assumes one request of the built-in simulator takes: each job's model's
    usual latency (its mean) under --sim-model-latency, else --sim-latency; both times
    --sim-time-scale, as the simulator answers. None: not the simulator (the price table's)."""
    if sim is None:
        return None
    scale = sim.time_scale
    if sim.latency_profile == "models":
        return lambda job: _model_latency(job.model, job.quality, job.size) * scale
    return sim.latency_mean * scale


@lru_cache(maxsize=256)
def _model_latency(model: str | None, quality: str | None, size: str | None) -> float:
    return mean_of(typical_latency(model, quality, size))


def check_served(endpoints: list[Any], checked: Checked) -> None:
    """Every model of the job file has an endpoint, or nothing is sent."""
    missing = unserved(endpoints, {line.model for line in checked.quote.lines})
    if missing:
        msg = (
            f"no endpoint of the providers file serves model(s) {', '.join(missing)}: add them "
            "to an endpoint's models list"
        )
        raise UsageError(msg)


def has_edits(job_file: str | Path) -> bool:
    """Whether any job of the file is an edit (a byte scan first; a parse only if it may)."""
    if not may_have_inputs(job_file):
        return False
    try:
        return any(job.inputs for job in iter_jobs(job_file))
    except (JobFileError, OSError, ValueError):
        return False  # the validation that follows reports it


def session_overrides(cfg: RunConfig) -> dict[str, Any]:
    """What run.json's session record keeps of the flags (secrets stripped by RunDir)."""
    given = {k: v for k, v in cfg.given.items() if v not in (None, False) and k != "func"}
    given.pop("run_dir", None)
    given.pop("on_budget", None)  # a command line may carry a webhook's secret
    return {k: v for k, v in given.items() if not k.startswith("sim_")} | {
        "sim": cfg.sim_record() or None
    }
