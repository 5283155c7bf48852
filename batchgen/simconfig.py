"""The simulator's settings, typed from the flag to the server: :class:`SimConfig`, one frozen
record of its knobs, built from its options (batchgen.simoptions' table) once.

    --sim-rpm 60 (run, resume)  ─┐
    rpm=60 (batchgen sim)        ├─► SimConfig.from_options ─► RunConfig.sim ─► the simulator
    sim={"rpm": 60} (the API)    │        (checked once)
    run.json settings.sim        ┘
    /_sim/config JSON ─► SimConfig.updated

Standard library only (the CLI's parser loads it: tests/test_startup.py); the simulator itself
(batchgen.sim.config) re-exports it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from batchgen.simoptions import (
    BATCH_FAULTS,
    FAIL_AFTER_CLASSES,
    FAULT_CLASSES,
    LATENCY_DISTRIBUTIONS,
    LATENCY_PROFILES,
    LIMIT_MESSAGES,
    RETRY_AFTER_MODES,
    SimConfigError,
    option_named,
    parse_faults,
    parse_schedule,
)

__all__ = ["SimConfig", "SimConfigError"]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything the simulator can be told. ``0``/``None`` means "off" for every knob."""

    seed: int = 0
    # latency: seconds; jitter is the standard deviation (lognormal) or half-width (uniform)
    latency_mean: float = 0.0
    latency_jitter: float = 0.0
    latency_dist: str = "lognormal"
    # "models": each model's typical latency (batchgen.provider.typical: by model, quality and
    # size, lognormal around its median) instead of latency_mean; time_scale multiplies every
    # latency (0.1 replays a 30 s model in 3 s; the benchmarks divide the limits by it too)
    latency_profile: str = ""
    time_scale: float = 1.0
    # server-side smooth limits (token buckets holding burst_s seconds' worth, at least 1)
    rpm: float | None = None
    ipm: float | None = None
    burst_s: float = 1.0
    # ((t_seconds_since_start, rpm), ...): the rpm in force from each t on; ipm likewise
    limit_schedule: tuple[tuple[float, float], ...] = ()
    ipm_schedule: tuple[tuple[float, float], ...] = ()
    # False: no x-ratelimit-* headers on any answer and a 429 body that names no limit, like
    # many aggregators and self-hosted gateways
    ratelimit_headers: bool = True
    # the Retry-After style of 429s (server limit and rate_limit faults): RETRY_AFTER_MODES
    retry_after_mode: str = "both"
    # the text of a server-limit 429: "stated" (OpenAI's, naming the limit: "... on images per
    # min (IPM): Limit 5, Used 5, Requested 1. Please try again in 12s."), "plain" ("Rate limit
    # exceeded"), "auto" (stated with ratelimit_headers, else "Too Many Requests")
    limit_message: str = "auto"
    # requests processed at once (arrival to the end of the answer); one more gets a 429 with
    # no hint at all (no retry-after, no x-ratelimit-*), like providers that cap active tasks
    max_concurrent: int | None = None
    # probability per request of each class in FAULT_CLASSES
    faults: Mapping[str, float] = field(default_factory=dict)
    # {"auth": N} / {"quota": N}: every request after the Nth successful one gets that fault
    fail_after: Mapping[str, int] = field(default_factory=dict)
    retry_after_s: float = 1.0
    hang_s: float = 60.0
    # None: any bearer key is accepted (but one is required)
    api_key: str | None = None
    extra_models: tuple[str, ...] = ()
    # rendering: tiny = 64x64 whatever the size; image_kb = a noise image of about that size
    tiny: bool = False
    image_kb: float | None = None
    # a file whose bytes are served as every image, whatever the request asks: a real
    # provider's file, e.g. one signed with a C2PA manifest (tests/test_metadata_c2pa.py)
    image_file: str | None = None
    # pictures to choose from by prompt hash; 0 = one per (prompt, image index) for real-size
    # renders (tiny / image_kb renders, the benchmarks' hot path, then use 8)
    variants: int = 0
    url_ttl_s: float = 3600.0
    url_store_max: int = 10_000
    # the Batch API (sim/batches.py): seconds a batch takes from creation to completed (the
    # compressible clock), and batch faults: {"fail": K, "expire": K} makes the K-th batch
    # created fail validation / expire half-way ("fail=1,expire=2"); line faults come from
    # ``faults`` and prompt directives, as for live requests; hostile output lines from a
    # ``[batch:MODE]`` marker in the prompt (sim/batches.py); more kinds: BATCH_FAULTS
    batch_seconds: float = 1.0
    batch_faults: Mapping[str, int] = field(default_factory=dict)
    # an origin ("http://host:port"): every API request is answered 307 Temporary Redirect to
    # the same path there, as a moved endpoint or a gateway in front of another region answers
    # (the /_sim/ control routes are not redirected)
    redirect_to: str | None = None

    def __post_init__(self) -> None:
        # freeze the containers too, so a caller's later edit cannot change a running sim
        object.__setattr__(self, "faults", MappingProxyType(dict(self.faults)))
        object.__setattr__(self, "fail_after", MappingProxyType(dict(self.fail_after)))
        object.__setattr__(self, "batch_faults", _coerce("batch_faults", self.batch_faults))
        object.__setattr__(self, "limit_schedule", _coerce("limit_schedule", self.limit_schedule))
        object.__setattr__(self, "ipm_schedule", _coerce("ipm_schedule", self.ipm_schedule))
        object.__setattr__(self, "extra_models", _coerce("extra_models", self.extra_models))
        _check_config(self)

    def __repr__(self) -> str:
        # the key must never reach a log line, even through a repr of the config
        knobs = ", ".join(
            f"{f.name}={'***' if f.name == 'api_key' and self.api_key else getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
        )
        return f"SimConfig({knobs})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SimConfig:
        """From options named like the flags (``rpm``, ``fail_after``, ``model_latency`` ...;
        ``sim_`` prefixes and dashes allowed; None: not given), each checked as its flag
        is: an unknown name, a wrong kind or a value outside its choices is a SimConfigError
        (a ConfigError) naming the option."""
        knobs: dict[str, Any] = {}
        for raw, value in options.items():
            option = option_named(raw)
            if value is None:
                continue
            option.check(value)
            if option.field is not None:
                knobs[option.field] = option.knob(value)
        return cls(**knobs)

    def updated(self, knobs: Mapping[str, Any]) -> SimConfig:
        """A copy with ``knobs`` applied (JSON-ish values are coerced to the field types)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(knobs) - known)
        if unknown:
            msg = f"unknown simulator knob(s) {unknown}; known knobs: {sorted(known)}"
            raise SimConfigError(msg)
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in knobs.items()})

    def public_dict(self) -> dict[str, Any]:
        """The knobs as JSON, with the API key masked."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["api_key"] = "***" if self.api_key else None
        out["faults"] = dict(self.faults)
        out["fail_after"] = dict(self.fail_after)
        out["limit_schedule"] = [list(p) for p in self.limit_schedule]
        out["ipm_schedule"] = [list(p) for p in self.ipm_schedule]
        out["extra_models"] = list(self.extra_models)
        out["batch_faults"] = dict(self.batch_faults)
        return out


def _coerce(name: str, value: Any) -> Any:
    if name == "faults" and isinstance(value, str):
        return parse_faults(value)
    if name == "fail_after" and isinstance(value, str):
        return {k: int(v) for k, v in parse_faults(value).items()}
    if name == "batch_faults":
        if isinstance(value, str):
            value = parse_faults(value)
        return MappingProxyType({k: int(v) for k, v in dict(value or {}).items()})
    if name in ("limit_schedule", "ipm_schedule"):
        if isinstance(value, str):
            return parse_schedule(value)
        return tuple(sorted((float(t), float(r)) for t, r in value or ()))
    if name == "extra_models":
        return tuple([value] if isinstance(value, str) else value or ())
    if name in ("faults", "fail_after") and value is None:
        return {}
    return value


def _check_config(c: SimConfig) -> None:
    problems: list[str] = []
    for cls, rate in c.faults.items():
        if cls not in FAULT_CLASSES:
            problems.append(f"faults: unknown class {cls!r} (known: {', '.join(FAULT_CLASSES)})")
        elif not (isinstance(rate, int | float) and 0.0 <= rate <= 1.0):
            problems.append(f"faults: {cls}={rate!r} must be a probability in [0, 1]")
    if sum(float(r) for r in c.faults.values() if isinstance(r, int | float)) > 1.0 + 1e-9:
        problems.append("faults: the rates add up to more than 1; lower some of them")
    for cls, n in c.fail_after.items():
        if cls not in FAIL_AFTER_CLASSES:
            problems.append(f"fail_after: {cls!r} must be one of {', '.join(FAIL_AFTER_CLASSES)}")
        elif not isinstance(n, int) or n < 0:
            problems.append(f"fail_after: {cls}={n!r} must be a whole number >= 0")
    for name in ("rpm", "ipm"):
        value = getattr(c, name)
        if value is not None and not (isinstance(value, int | float) and value > 0):
            problems.append(f"{name}={value!r} must be a positive number (or None for no limit)")
    for name, unit in (("limit_schedule", "rpm"), ("ipm_schedule", "ipm")):
        for t, limit in getattr(c, name):
            if t < 0 or limit <= 0 or not math.isfinite(limit):
                problems.append(f"{name}: ({t}, {limit}) needs t >= 0 and {unit} > 0")
    if not (isinstance(c.burst_s, int | float) and 0 < c.burst_s <= 3600):
        problems.append(f"burst_s={c.burst_s!r} must be a number of seconds in (0, 3600]")
    if not isinstance(c.ratelimit_headers, bool):
        problems.append(f"ratelimit_headers={c.ratelimit_headers!r} must be true or false")
    if c.retry_after_mode not in RETRY_AFTER_MODES:
        problems.append(
            f"retry_after_mode={c.retry_after_mode!r}: use one of {', '.join(RETRY_AFTER_MODES)}"
        )
    if c.max_concurrent is not None and not (
        isinstance(c.max_concurrent, int)
        and not isinstance(c.max_concurrent, bool)
        and c.max_concurrent >= 1
    ):
        problems.append(
            f"max_concurrent={c.max_concurrent!r} must be a whole number >= 1 (or None for no cap)"
        )
    for name in ("latency_mean", "latency_jitter", "retry_after_s", "hang_s"):
        value = getattr(c, name)
        if not (isinstance(value, int | float) and value >= 0):
            problems.append(f"{name}={value!r} must be a number >= 0")
    if c.latency_profile not in LATENCY_PROFILES:
        problems.append(f"latency_profile={c.latency_profile!r}: use one of {LATENCY_PROFILES}")
    if not (isinstance(c.time_scale, int | float) and 0 < c.time_scale <= 1000):
        problems.append(f"time_scale={c.time_scale!r} must be a number in (0, 1000]")
    if c.limit_message not in LIMIT_MESSAGES:
        problems.append(f"limit_message={c.limit_message!r}: use one of {LIMIT_MESSAGES}")
    if c.latency_dist not in LATENCY_DISTRIBUTIONS:
        problems.append(f"latency_dist={c.latency_dist!r}: use one of {LATENCY_DISTRIBUTIONS}")
    if c.image_kb is not None and not (0 < c.image_kb <= 50_000):
        problems.append(f"image_kb={c.image_kb!r} must be in (0, 50000]")
    if c.image_file is not None and not Path(c.image_file).is_file():
        problems.append(f"image_file={c.image_file!r}: no such file")
    for kind, k in c.batch_faults.items():
        if kind not in BATCH_FAULTS or k < 1:
            problems.append(f"batch_faults: {kind}={k!r}: use {'/'.join(BATCH_FAULTS)}=K, K >= 1")
    if not (isinstance(c.batch_seconds, int | float) and c.batch_seconds >= 0):
        problems.append(f"batch_seconds={c.batch_seconds!r} must be a number >= 0")
    if c.redirect_to is not None and not (
        isinstance(c.redirect_to, str) and c.redirect_to.startswith(("http://", "https://"))
    ):
        problems.append(f"redirect_to={c.redirect_to!r} must be an http(s) origin")
    if c.variants < 0:
        problems.append(f"variants={c.variants!r} must be >= 0")
    if problems:
        msg = "invalid simulator config: " + "; ".join(problems)
        raise SimConfigError(msg)
