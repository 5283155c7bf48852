"""A run's settings: one table of defaults, and the frozen :class:`RunConfig` built once from
it, run.json (on resume) and the flags given now (CLI arguments or the API's keyword
arguments, both named like the flags: ``rpm``, ``max_cost``, ``base_url`` ...).

    DEFAULTS            name -> default, the only place a default is written
       ▼ overridden by
    run.json settings   what the run recorded (resume, collect, score)
       ▼ overridden by
    flags               given now (None / not given: keep what is above)
       ▼
    RunConfig           frozen; ``record()`` is what run.json keeps (never the API key)

Importing this module must stay cheap: the CLI builds its parser from this table before it
knows which command runs (tests/test_startup.py), so it imports nothing but the standard
library.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from batchgen.errors import ConfigError
from batchgen.simconfig import SimConfig
from batchgen.simoptions import is_sim_option, option_named

# the in-flight limit when --concurrency is not given: the autopilot's cap, or the fixed
# number of workers with --no-adapt (the limiter reads both from here)
DEFAULT_CONCURRENCY_CAP = 256
FIXED_CONCURRENCY = 8

# ---- the table ---------------------------------------------------------------------------
# pool settings: recorded in run.json under settings.pool, overridable on resume
POOL_DEFAULTS: Mapping[str, Any] = {
    "concurrency": None,  # the autopilot's in-flight limit; a number caps it
    "rpm": None,  # requests per minute at most (None: found from the provider)
    "ipm": None,  # images per minute at most
    "timeout": 120.0,  # seconds per request
    "max_attempts": 5,  # attempts per job for retryable errors
    "grace": 30.0,  # seconds requests in flight may finish after a stop
    "adaptive": True,  # the autopilot (False: --no-adapt, fixed limits)
    "stall_timeout": 300.0,  # stop when nothing but 429s comes back for this long
    "max_pause": 300.0,  # hold the pool at most this long for one Retry-After
    "image_checks": True,  # check each saved image in the background
}
# --via batch: recorded under settings.batch
BATCH_DEFAULTS: Mapping[str, Any] = {
    "batch_max_requests": 50_000,  # requests per input file (the provider's limit)
    "batch_max_bytes": 200 * 1024 * 1024,  # bytes per input file (the provider's limit)
    "poll_interval": 5.0,  # first poll after this many seconds, doubling while idle
    "poll_max": 60.0,  # longest wait between polls
    "assume_latency": None,  # seconds one live request takes, for the deadline's estimate
}
# everything else a run is given: the job defaults, where requests go, money, output
OTHER_DEFAULTS: Mapping[str, Any] = {
    "model": None,
    "size": None,
    "quality": None,
    "n": None,
    "provider": None,  # "openai" (any OpenAI-compatible API) or "sim" (the built-in simulator)
    "base_url": None,  # default $OPENAI_BASE_URL, else the OpenAI API
    "api_key_env": None,  # the variable holding the key (default OPENAI_API_KEY)
    "api_key": None,  # the API's key argument: used, never recorded
    "providers": None,  # a TOML file of endpoints
    "prices": None,
    "max_cost": None,
    "price_per_image": None,
    "via": None,  # "live" (default) or "batch"
    "detach": False,
    "deadline": None,  # seconds from now
    "quiet": False,
    "retry_failed": False,
    "max_jobs": None,
    # money across runs (money/ledger.py, money/monthly.py); None: config.toml, then off
    "ledger": None,  # the ledger file (default $BATCHGEN_LEDGER, else the user data dir)
    "project": None,  # the ledger's project (default the job file's folder name)
    "monthly_budget": None,  # USD per calendar month (UTC) over every project of the ledger
    "project_budget": None,  # USD per calendar month for this run's project
    "on_budget": None,  # a shell command run at 50/80/100 % of a budget
    # where images go: None is RUN_DIR/images; a URL (s3://bucket/prefix) any fsspec
    # filesystem (batchgen.storage); the run directory itself stays on a POSIX path
    "images_to": None,
}
DEFAULTS: Mapping[str, Any] = {**POOL_DEFAULTS, **BATCH_DEFAULTS, **OTHER_DEFAULTS}
JOB_DEFAULT_NAMES = ("model", "size", "quality", "n")
# the model of a job that names none when --model is not given either (the API itself would
# fall back to the retired dall-e-2): the cheapest current image model, stated in the quote
DEFAULT_MODEL = "gpt-image-1-mini"


def with_default_model(defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Job defaults with batchgen's default model when --model was not given (a new run or a
    plan; a resume keeps the defaults its run recorded)."""
    out = dict(defaults)
    if not out.get("model"):
        out["model"] = DEFAULT_MODEL
    return out


PROVIDERS = ("openai", "sim")
# recorded by `run` at the top of settings and taken from there on resume
_RECORDED_MONEY = (
    "prices",
    "max_cost",
    "price_per_image",
    "ledger",
    "project",
    "monthly_budget",
    "project_budget",
)
_RECORDED_CONNECTION = ("provider", "base_url", "api_key_env", "images_to")


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """The pool's settings (run.json ``settings.pool``)."""

    concurrency: int | None = POOL_DEFAULTS["concurrency"]
    rpm: float | None = POOL_DEFAULTS["rpm"]
    ipm: float | None = POOL_DEFAULTS["ipm"]
    timeout: float = POOL_DEFAULTS["timeout"]
    max_attempts: int = POOL_DEFAULTS["max_attempts"]
    grace: float = POOL_DEFAULTS["grace"]
    adaptive: bool = POOL_DEFAULTS["adaptive"]
    stall_timeout: float | None = POOL_DEFAULTS["stall_timeout"]
    max_pause: float | None = POOL_DEFAULTS["max_pause"]
    image_checks: bool = POOL_DEFAULTS["image_checks"]

    @property
    def concurrency_cap(self) -> int:
        """Requests in flight at most: --concurrency, else the table's default for the mode."""
        if self.concurrency:
            return int(self.concurrency)
        return DEFAULT_CONCURRENCY_CAP if self.adaptive else FIXED_CONCURRENCY

    @property
    def max_pause_s(self) -> float:
        return float(self.max_pause or POOL_DEFAULTS["max_pause"])

    @property
    def stall_timeout_s(self) -> float:
        return float(self.stall_timeout or POOL_DEFAULTS["stall_timeout"])

    def with_limits(
        self, *, rpm: float | None, ipm: float | None, concurrency: int | None
    ) -> PoolConfig:
        """These settings under an endpoint's own limits (a providers file's): each one it
        sets replaces the run's."""
        return replace(
            self,
            rpm=rpm or self.rpm,
            ipm=ipm or self.ipm,
            concurrency=concurrency or self.concurrency,
        )

    def record(self) -> dict[str, Any]:
        """What run.json keeps (``settings.pool``)."""
        return {name: getattr(self, name) for name in POOL_DEFAULTS}

    @classmethod
    def build(
        cls, recorded: Mapping[str, Any] | None = None, flags: Mapping[str, Any] | None = None
    ) -> PoolConfig:
        """The table, overridden by ``recorded`` (run.json), by ``flags`` given (not None)."""
        values = _layered(POOL_DEFAULTS, recorded, flags)
        _check_pool(values)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """``--via batch``: input file limits and polling (run.json ``settings.batch``)."""

    batch_max_requests: int = BATCH_DEFAULTS["batch_max_requests"]
    batch_max_bytes: int = BATCH_DEFAULTS["batch_max_bytes"]
    poll_interval: float = BATCH_DEFAULTS["poll_interval"]
    poll_max: float = BATCH_DEFAULTS["poll_max"]
    assume_latency: float | None = BATCH_DEFAULTS["assume_latency"]
    deadline_at: float | None = None  # wall clock (unix s), from --deadline given now

    def record(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in BATCH_DEFAULTS}
        if self.deadline_at is not None:
            out["deadline_at"] = self.deadline_at
        return out

    @classmethod
    def build(
        cls,
        recorded: Mapping[str, Any] | None = None,
        flags: Mapping[str, Any] | None = None,
        *,
        now: float | None = None,
    ) -> BatchConfig:
        values = _layered(BATCH_DEFAULTS, recorded, flags)
        deadline = (flags or {}).get("deadline")
        deadline_at = (recorded or {}).get("deadline_at")
        if deadline is not None:
            deadline_at = (time.time() if now is None else now) + float(deadline)
        return cls(**values, deadline_at=deadline_at)


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything a session of a run is given, built once (``RunConfig.build``)."""

    pool: PoolConfig = field(default_factory=PoolConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    job_defaults: Mapping[str, Any] = field(default_factory=dict)  # model, size, quality, n
    provider: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never recorded
    providers: str | None = None  # --providers FILE
    recorded_endpoints: list[Any] | None = None  # run.json's endpoints (resume)
    prices: str | None = None
    max_cost: float | None = None
    price_per_image: float | None = None
    via: str | None = None
    detach: bool = False
    deadline: float | None = None
    quiet: bool = False
    retry_failed: bool = False
    max_jobs: int | None = None
    ledger: str | None = None
    project: str | None = None
    monthly_budget: float | None = None
    project_budget: float | None = None
    on_budget: str | None = None
    images_to: str | None = None  # --images-to URL (None: RUN_DIR/images)
    sim: SimConfig = field(default_factory=SimConfig)  # the built-in simulator's knobs
    # the simulator's options as given (named like the flags, without --sim-), over run.json's
    sim_options: Mapping[str, Any] = field(default_factory=dict)
    # the flags of this session as given (and as merged with run.json on resume): what
    # run.json's session record keeps (secrets stripped there)
    given: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        flags: Mapping[str, Any],
        recorded: Mapping[str, Any] | None = None,
        *,
        now: float | None = None,
    ) -> RunConfig:
        """From the flags given (CLI names; None: not given) over run.json's ``settings``
        (resume) over :data:`DEFAULTS`. Raises ConfigError naming a bad value."""
        rec = dict(recorded or {})
        merged = _merge_recorded(flags, rec)
        provider = merged.get("provider")
        if provider is not None and provider not in PROVIDERS:
            msg = f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}"
            raise ConfigError(msg)
        scalars = {
            name: merged[name] if merged.get(name) is not None else DEFAULTS[name]
            for name in OTHER_DEFAULTS
            if name not in JOB_DEFAULT_NAMES
        }
        for name in _RECORDED_CONNECTION:  # given now, else what the run used
            scalars[name] = merged.get(name) or rec.get(name)
        _check_money(scalars)
        sim_options = _sim_options(flags, rec.get("sim"))
        if scalars.get("images_to") and scalars.get("via") == "batch":
            # a batch's output files are collected into RUN_DIR/images (docs/storage.md)
            msg = "--images-to works with the live path only: leave out --via batch or --images-to"
            raise ConfigError(msg)
        return cls(
            pool=PoolConfig.build(rec.get("pool"), merged),
            batch=BatchConfig.build(rec.get("batch"), merged, now=now),
            job_defaults=_job_defaults(merged, rec),
            recorded_endpoints=rec.get("endpoints"),
            sim=SimConfig.from_options(sim_options),
            sim_options=sim_options,
            given={k: v for k, v in merged.items() if k != "api_key"},  # the key: never kept
            **scalars,
        )

    @property
    def via_batch(self) -> bool:
        return self.via == "batch"

    def sim_record(self) -> dict[str, Any]:
        """What run.json keeps of the simulator's options (``settings.sim``: flag-named,
        ``sim_rpm`` ..., the key's variable name at most, never a key)."""
        return {f"sim_{name}": value for name, value in self.sim_options.items()}


def _layered(
    table: Mapping[str, Any], recorded: Mapping[str, Any] | None, flags: Mapping[str, Any] | None
) -> dict[str, Any]:
    values = {**table, **{k: v for k, v in (recorded or {}).items() if k in table}}
    for name in table:
        given = (flags or {}).get(name)
        if given is not None:
            values[name] = given
    return values


def _merge_recorded(flags: Mapping[str, Any], recorded: Mapping[str, Any]) -> dict[str, Any]:
    """Flags given now win; money settings come from run.json."""
    merged = dict(flags)
    for key in _RECORDED_MONEY:
        if merged.get(key) is None:
            merged[key] = recorded.get(key)
    return merged


def _sim_options(flags: Mapping[str, Any], recorded: Any) -> dict[str, Any]:
    """The simulator's knobs given now (``sim_*`` flags, not None) over run.json's, by their
    option's name; the server's address (host, port) is no knob of a run's simulator."""
    out: dict[str, Any] = {}
    given = {k: v for k, v in flags.items() if k.startswith("sim_")}
    for source in (recorded if isinstance(recorded, Mapping) else {}, given):
        for key, value in source.items():
            if source is not given and not is_sim_option(key):
                continue  # run.json of another version: an option since gone is no error
            option = option_named(key)
            if value is not None and option.field is not None:
                out[option.name] = value
    return out


def _job_defaults(merged: Mapping[str, Any], recorded: Mapping[str, Any]) -> dict[str, Any]:
    if recorded:  # resume: what the run recorded (the job file's ids depend on it)
        return dict(recorded.get("defaults") or {})
    return with_default_model({name: merged.get(name) for name in JOB_DEFAULT_NAMES})


def _positive(name: str, value: Any, *, whole: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and whole:
        ok = float(value).is_integer()
    if not ok or not (value > 0 and math.isfinite(value)):
        kind = "a whole number >= 1" if whole else "a number > 0"
        msg = f"{name} must be {kind}, got {value!r}"
        raise ConfigError(msg)


def _check_pool(values: Mapping[str, Any]) -> None:
    for name in ("concurrency", "max_attempts"):
        if values[name] is not None:
            _positive(name, values[name], whole=True)
    for name in ("rpm", "ipm", "timeout", "stall_timeout", "max_pause"):
        if values[name] is not None:
            _positive(name, values[name])
    grace = values["grace"]
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        msg = f"grace must be a number of seconds >= 0, got {grace!r}"
        raise ConfigError(msg)


def _check_money(values: Mapping[str, Any]) -> None:
    money = ("max_cost", "price_per_image", "monthly_budget", "project_budget")
    for name in money:
        value = values.get(name)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (value >= 0 and math.isfinite(value))
        ):
            msg = f"{name} must be a number >= 0, got {value!r}"
            raise ConfigError(msg)
