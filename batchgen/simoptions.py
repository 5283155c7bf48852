"""The simulator's options as the flags (``--sim-rpm``, ``batchgen sim --rpm``) and the API's
``sim={"rpm": ...}`` name them: :data:`SIM_OPTIONS`, the one table of their names, kinds,
defaults and help, with the value sets and text formats they accept. batchgen.simconfig turns
them into a SimConfig; batchgen.sim.flags makes the flags from the table.

Standard library only: the CLI builds its parser from the table before it knows which command
runs (tests/test_startup.py).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
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
    "fail",
    "expire",
    # hostile providers (K-th batch): request_counts as strings, errors as a bare list (with
    # a failed validation), its output file answers 404; =1 on/off: GET /v1/files
    # or GET /v1/batches answers 405 (providers without those listings)
    "counts_str",
    "errors_list",
    "output_404",
    "no_file_list",
    "no_batch_list",
)


class SimConfigError(ConfigError, ValueError):
    """A knob has a value the simulator cannot use; the message names the knob and the fix."""


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
       "by quality, dall-e-3 ~10 s, FLUX/Gemini a few) instead of one mean latency for all",
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
