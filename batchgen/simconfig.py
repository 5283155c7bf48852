"""The simulator's settings, typed from the flag to the server: :class:`SimConfig` (one frozen
record of its knobs) and :data:`SIM_OPTIONS` (the one table of its options as the flags and
the API's ``sim={...}`` name them, with their defaults and kinds).

    --sim-rpm 60 (run, resume)  ─┐
    rpm=60 (batchgen sim)        ├─► SimConfig.from_options ─► RunConfig.sim ─► the simulator
    sim={"rpm": 60} (the API)    │        (checked once)
    run.json settings.sim        ┘
    /_sim/config JSON ─► SimConfig.updated

Standard library only: the CLI builds its parser from the table before it knows which command
runs (tests/test_startup.py), and the simulator itself (batchgen.sim) re-exports all of it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from batchgen.errors import ConfigError

LOOPBACK = "127.0.0.1"
# how a 429 says when to come back (SimConfig.retry_after_mode): "both" = retry-after-ms
# (exact) + retry-after (whole seconds, rounded up); "ms" / "seconds" one of them; "date" an
# HTTP-date; "none" no hint
RETRY_AFTER_MODES: tuple[str, ...] = ("both", "ms", "seconds", "date", "none")

# Order matters: random fault rates are drawn against the cumulative sum in this order, so a
# given seed picks the same class for the same (prompt, attempt) on every run.
FAULT_CLASSES: tuple[str, ...] = (
    "auth",
    "quota",
    "rate_limit",
    "content_policy",
    "server",
    "server_html",
    "timeout",
    "disconnect",
    "truncated_json",
    "bad_base64",
    "not_image",
    # submit-then-poll protocols (sim.poll): the signed result URL has expired at download
    "expired_url",
)
FAIL_AFTER_CLASSES: tuple[str, ...] = ("auth", "quota")
LATENCY_DISTRIBUTIONS: tuple[str, ...] = ("lognormal", "uniform")
LATENCY_PROFILES: tuple[str, ...] = ("", "models")
LIMIT_MESSAGES: tuple[str, ...] = ("auto", "stated", "plain")
BATCH_FAULTS: tuple[str, ...] = (
    "fail", "expire",
    # hostile providers (K-th batch): request_counts as strings, errors as a bare list (with
    # a failed validation), its output file answers 404; =1 on/off: GET /v1/files
    # or GET /v1/batches answers 405 (providers without those listings)
    "counts_str", "errors_list", "output_404", "no_file_list", "no_batch_list",
)  # fmt: skip


class SimConfigError(ConfigError, ValueError):
    """A knob has a value the simulator cannot use; the message names the knob and the fix."""


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
    if c.variants < 0:
        problems.append(f"variants={c.variants!r} must be >= 0")
    if problems:
        msg = "invalid simulator config: " + "; ".join(problems)
        raise SimConfigError(msg)


def parse_faults(text: str) -> dict[str, float]:
    """``"server=0.1,rate_limit=0.05"`` → ``{"server": 0.1, "rate_limit": 0.05}``."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or math.isnan(number):
            msg = (
                f"bad fault spec {part!r} in {text!r}: write CLASS=RATE pairs separated by "
                f"commas, e.g. 'server=0.1,rate_limit=0.05'"
            )
            raise SimConfigError(msg)
        out[name] = number
    return out


def parse_schedule(text: str) -> tuple[tuple[float, float], ...]:
    """``"0:60,30:120"`` → ``((0.0, 60.0), (30.0, 120.0))`` (seconds:limit pairs, per minute)."""
    pairs = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        t, sep, rpm = part.partition(":")
        msg = f"bad limit schedule entry {part!r}: write SECONDS:LIMIT pairs, e.g. '0:60,30:120'"
        try:
            pairs.append((float(t), float(rpm)))
        except ValueError:
            raise SimConfigError(msg) from None
        if not sep:
            raise SimConfigError(msg)
    return tuple(sorted(pairs))


@dataclass(frozen=True, slots=True)
class SimOption:
    """One option of the simulator, as ``--sim-NAME`` (run, resume), ``--NAME`` (batchgen sim)
    and the API's ``sim={"NAME": ...}`` take it. ``kind`` bool is a switch."""

    name: str
    kind: type
    default: Any
    help: str
    field: str | None  # the SimConfig knob it sets (None: the server's address, no knob)
    choices: tuple[str, ...] | None = None
    metavar: str | None = None

    def check(self, value: Any) -> None:
        if self.kind is bool:
            ok, kind = isinstance(value, bool), "True or False"
        elif self.kind in (int, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and (self.kind is float or float(value).is_integer())
            kind = "a whole number" if self.kind is int else "a number"
        else:
            ok = isinstance(value, str)
            kind = f"a string (as its flag --sim-{self.name.replace('_', '-')} takes)"
        if ok and self.choices is not None and value not in self.choices:
            ok, kind = False, "one of " + ", ".join(self.choices)
        if not ok:
            raise SimConfigError(f"sim: option {self.name!r} must be {kind}, got {value!r}")

    def knob(self, value: Any) -> Any:
        """The option's value as its SimConfig knob holds it."""
        convert = _KNOB_OF.get(self.name)
        return convert(value) if convert is not None else value


def _key_of(name: str) -> str | None:
    import os

    key = os.environ.get(name)
    if not key:
        msg = f"sim: api_key_env {name}: that environment variable is empty or unset"
        raise SimConfigError(msg)
    return key


_KNOB_OF: dict[str, Any] = {
    "no_ratelimit_headers": lambda on: not on,
    "model_latency": lambda on: "models" if on else "",
    "faults": lambda text: parse_faults(text),
    "fail_after": lambda text: {k: int(v) for k, v in parse_faults(text).items()},
    "extra_models": lambda text: tuple(m.strip() for m in text.split(",") if m.strip()),
    "api_key_env": _key_of,
}
_O = SimOption
# the one table: the flags, the API's check and SimConfig.from_options all read it
SIM_OPTIONS: tuple[SimOption, ...] = (
    _O("host", str, LOOPBACK, "interface to bind (default 127.0.0.1)", None),
    _O("port", int, 8000, "port; 0 picks a free one", None),
    _O("seed", int, 0, "seed for faults, latency, images", "seed"),
    _O("rpm", float, None, "server limit, requests/min", "rpm"),
    _O("ipm", float, None, "server limit, images/min", "ipm"),
    _O("limit_schedule", str, None, "change the rpm limit at T seconds after start, e.g. "
       "'0:60,30:240'", "limit_schedule", metavar="T:RPM,..."),
    _O("ipm_schedule", str, None, "change the ipm limit at T seconds after start, e.g. "
       "'0:120,30:480'", "ipm_schedule", metavar="T:IPM,..."),
    _O("burst", float, 1.0, "the limits' token buckets hold this many seconds of the rate "
       "(default 1)", "burst_s", metavar="SECONDS"),
    _O("no_ratelimit_headers", bool, False, "send no x-ratelimit-* headers, and 429 bodies "
       "that name no limit", "ratelimit_headers"),
    _O("retry_after_mode", str, "both", "the 429s' hint: retry-after-ms and retry-after "
       "(both, the default), only one (ms, seconds), an HTTP-date (date) or nothing (none)",
       "retry_after_mode", choices=RETRY_AFTER_MODES),
    _O("max_concurrent", int, None, "requests processed at once; one more gets a 429 with no "
       "hint", "max_concurrent", metavar="N"),
    _O("latency", float, 0.0, "mean latency, seconds", "latency_mean"),
    _O("latency_jitter", float, 0.0, "latency std dev, s", "latency_jitter"),
    _O("latency_dist", str, "lognormal", "latency distribution (default lognormal)",
       "latency_dist", choices=LATENCY_DISTRIBUTIONS),
    _O("model_latency", bool, False, "each model's usual latency (gpt-image-1 tens of seconds "
       "by quality, dall-e-3 ~10 s, FLUX/Gemini a few) instead of --latency",
       "latency_profile"),
    _O("time_scale", float, 1.0, "multiply every latency by X (0.1: a 30 s model answers in "
       "3 s)", "time_scale", metavar="X"),
    _O("limit_message", str, "auto", "a limit 429's text: OpenAI's naming the limit (stated), "
       "'Rate limit exceeded' (plain), or stated with headers and 'Too Many Requests' without "
       "(auto)", "limit_message", choices=LIMIT_MESSAGES),
    _O("faults", str, "", "fault probabilities, e.g. 'server=0.1,content_policy=0.05'",
       "faults", metavar="CLASS=RATE,..."),
    _O("fail_after", str, "", "every request after the Nth successful one fails with that "
       "class", "fail_after", metavar="auth=N|quota=N"),
    _O("retry_after", float, 1.0, "Retry-After of rate_limit faults, s", "retry_after_s"),
    _O("hang", float, 60.0, "seconds a timeout fault hangs", "hang_s"),
    _O("tiny", bool, False, "64x64 images whatever the size", "tiny"),
    _O("image_kb", float, None, "images of about this many KB", "image_kb"),
    _O("extra_models", str, "", "more model names, comma-separated", "extra_models"),
    _O("batch_seconds", float, 1.0, "Batch API: seconds a batch takes from creation to "
       "completed (default 1)", "batch_seconds", metavar="S"),
    _O("batch_faults", str, "", "Batch API: the K-th batch created fails validation / "
       "expires half-way", "batch_faults", metavar="fail=K,expire=K"),
    _O("api_key_env", str, None, "accept only the key in this environment variable "
       "(default: any bearer key)", "api_key", metavar="VAR"),
)  # fmt: skip
_BY_NAME = {option.name: option for option in SIM_OPTIONS}


def is_sim_option(name: Any) -> bool:
    key = str(name).replace("-", "_")
    return key in _BY_NAME or key.removeprefix("sim_") in _BY_NAME


def option_named(name: Any) -> SimOption:
    """The option ``name`` stands for (``rpm``, ``sim_rpm``, ``sim-rpm``, ``fail-after``)."""
    key = str(name).replace("-", "_")
    option = _BY_NAME.get(key) or _BY_NAME.get(key.removeprefix("sim_"))
    if option is None:
        known = ", ".join(sorted(_BY_NAME))
        raise SimConfigError(f"sim: unknown simulator option {name!r}; known: {known}")
    return option
