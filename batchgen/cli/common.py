"""Flags and set-up shared by `run` and `resume`: provider, key, limits, pool settings.

Registering flags must stay cheap: `batchgen --help` and every subcommand's parser are built
before anything runs, so this module imports neither aiohttp (the provider), anyio (the pool)
nor the simulator. tests/test_startup.py fails if one of them comes back.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from batchgen.cli.money_args import add_money_arguments
from batchgen.errors import redact
from batchgen.provider.base import DEFAULT_BASE_URL
from batchgen.sim.flags import add_sim_arguments

# the limiter's own defaults, repeated here so building the parser does not import anyio;
# tests/test_limits.py checks they agree
DEFAULT_CONCURRENCY_CAP = 256
FIXED_CONCURRENCY = 8

if TYPE_CHECKING:
    from batchgen.runner.control import PoolSettings


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 3
SIM_KEY = "sk-sim-local"

# settings recorded in run.json and overridable on resume: name -> default
POOL_DEFAULTS: dict[str, Any] = {
    "concurrency": None,  # the autopilot's in-flight limit; a number caps it
    "rpm": None,
    "ipm": None,
    "timeout": 120.0,
    "max_attempts": 5,
    "grace": 30.0,
    "adaptive": True,
    "stall_timeout": 300.0,
    "max_pause": 300.0,
    "image_checks": True,
}


class UsageError(Exception):
    """Bad flags or environment: exit 2 before anything is sent."""


def add_job_defaults(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("job defaults (fill what a job leaves out)")
    group.add_argument("--model", help="e.g. gpt-image-1")
    group.add_argument("--size", help="e.g. 1024x1024")
    group.add_argument("--quality", help="e.g. low, medium, high, standard, hd")
    group.add_argument("--n", type=int, help="images per request")


def add_session_arguments(parser: argparse.ArgumentParser, *, resume: bool) -> None:
    """Flags of `run`, and of `resume` where given ones override run.json (default None)."""

    def default(name: str) -> Any:
        return None if resume else POOL_DEFAULTS[name]

    conn = parser.add_argument_group("provider")
    conn.add_argument(
        "--provider",
        choices=("openai", "sim"),
        default=None,
        help="openai: any OpenAI-compatible API (default); sim: start the built-in simulator",
    )
    conn.add_argument(
        "--base-url", help=f"API base URL (default: $OPENAI_BASE_URL, else {DEFAULT_BASE_URL})"
    )
    conn.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="environment variable holding the API key (default OPENAI_API_KEY)",
    )
    conn.add_argument(
        "--providers",
        metavar="FILE",
        help="a TOML file of endpoints (protocol, base URL, key variable, models): each job "
        "goes to an endpoint serving its model, each endpoint with its own autopilot "
        "(README: Providers)",
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--concurrency",
        type=_positive_int,
        default=default("concurrency"),
        help="requests in flight at most: a cap on the autopilot's in-flight "
        f"limit (default {DEFAULT_CONCURRENCY_CAP}; {FIXED_CONCURRENCY} with "
        "--no-adapt)",
    )
    limits.add_argument(
        "--rpm",
        type=_positive_float,
        default=default("rpm"),
        help="requests per minute at most: a ceiling the autopilot never "
        "passes, and where it starts (default: found from the provider)",
    )
    limits.add_argument(
        "--ipm",
        type=_positive_float,
        default=default("ipm"),
        help="images per minute at most (a request with n=4 counts 4); a ceiling like --rpm",
    )
    limits.add_argument(
        "--no-adapt",
        dest="adaptive",
        action="store_false",
        default=None if resume else True,
        help="fixed limits: exactly --rpm/--ipm/--concurrency, no autopilot "
        "(no slow start, no following 429s or x-ratelimit headers)",
    )
    limits.add_argument(
        "--stall-timeout",
        dest="stall_timeout",
        type=_positive_float,
        default=default("stall_timeout"),
        metavar="SECONDS",
        help="stop (exit 3, jobs pending) when the provider has answered "
        "nothing but 429s for this long (default 300)",
    )
    limits.add_argument(
        "--max-pause",
        dest="max_pause",
        type=_positive_float,
        default=default("max_pause"),
        metavar="SECONDS",
        help="hold the pool at most this long for one Retry-After or reset "
        "(default 300; a longer ask is capped and logged)",
    )
    limits.add_argument(
        "--timeout",
        type=_positive_float,
        default=default("timeout"),
        help="seconds per request (default 120)",
    )
    limits.add_argument(
        "--max-attempts",
        type=_positive_int,
        default=default("max_attempts"),
        help="attempts per job for retryable errors (default 5)",
    )
    limits.add_argument(
        "--grace",
        type=float,
        default=default("grace"),
        help="seconds requests in flight may finish after Ctrl-C (default 30)",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--quiet", action="store_true", help="no progress display")
    out.add_argument(
        "--image-checks",
        action=argparse.BooleanOptionalAction,
        default=default("image_checks"),
        help="check each saved image in the background (decodable, size, blank, blur, "
        "duplicates) so `batchgen report` only reads the results (default on)",
    )
    add_money_arguments(parser)
    add_sim_arguments(parser, prefix="sim-")


def prefer_system_allocator() -> None:
    """Arrow allocations of this process (run, resume, report) go to the system allocator,
    unless the user chose one with ``ARROW_DEFAULT_MEMORY_POOL``. Arrow reads that variable
    once, when pyarrow first allocates: call this before anything imports pyarrow.

    The wheels' default, mimalloc, keeps what is freed: peak RSS of a 100,000-job run 157 MB
    with it, 124 MB with the system allocator, which hands freed pages back (131 and 104 MB
    at 10,000 jobs); a report on a 1M-row log ~765 and ~660 MB, in the same time."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected a whole number ≥ 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        msg = f"expected a number > 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


@dataclass(frozen=True, slots=True)
class Connection:
    provider: str  # "openai" | "sim"
    base_url: str | None  # None for sim until it is started
    key_env: str
    api_key: str  # never written anywhere


def providers_connection(
    args: argparse.Namespace, recorded: list[Any] | None = None
) -> tuple[Connection, list[Any]] | None:
    """``--providers FILE`` (or the endpoints run.json recorded): the endpoints, their keys
    checked; None when the run has one endpoint (the --provider/--base-url flags)."""
    from batchgen.cli.providers import from_records, load_providers, resolve_keys

    if getattr(args, "providers", None):
        if args.provider or args.base_url or args.api_key_env:
            msg = "--providers names every endpoint: drop --provider/--base-url/--api-key-env"
            raise UsageError(msg)
        specs = load_providers(args.providers)
    elif recorded and not (args.provider or args.base_url):
        specs = from_records(recorded)
    else:
        return None
    resolve_keys(specs)
    return Connection("providers", None, "", ""), specs


def resolve_connection(
    provider: str | None, base_url: str | None, key_env: str | None
) -> Connection:
    """Where requests go and with which key; raises UsageError with the fix."""
    provider = provider or "openai"
    key_env = key_env or "OPENAI_API_KEY"
    if provider == "sim":
        return Connection("sim", None, key_env, os.environ.get(key_env) or SIM_KEY)
    url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        msg = f"--base-url {redact(url)!r} is not an http(s) URL (e.g. https://api.openai.com/v1)"
        raise UsageError(msg)
    if parts.password is not None:
        # aiohttp would refuse every request (one Authorization header cannot carry both), and
        # the password would be one more secret to keep out of run.json and the log
        msg = (
            f"--base-url {redact(url)} carries a password: batchgen sends the API key as the "
            "Authorization header, which cannot also carry the URL's user:password. Drop "
            f"`user:password@` from the URL (a gateway's token goes in ${key_env})"
        )
        raise UsageError(msg)
    key = os.environ.get(key_env, "")
    if not key:
        if _is_loopback(parts.hostname or ""):
            key = SIM_KEY  # a local server (the simulator, a local gateway) may need none
        else:
            msg = (
                f"no API key: ${key_env} is not set. Export it (export {key_env}=sk-...), name "
                "another variable with --api-key-env NAME, or try the simulator with "
                "--provider sim"
            )
            raise UsageError(msg)
    return Connection("openai", url, key_env, key)


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def pool_settings(values: dict[str, Any]) -> PoolSettings:
    from batchgen.runner.control import PoolSettings

    concurrency = values.get("concurrency") or (
        DEFAULT_CONCURRENCY_CAP if values.get("adaptive", True) else FIXED_CONCURRENCY
    )
    return PoolSettings(
        concurrency=int(concurrency),
        stall_timeout_s=float(values.get("stall_timeout") or 300.0),
        timeout=float(values["timeout"]),
        max_attempts=int(values["max_attempts"]),
        grace_s=float(values["grace"]),
    )


def pool_values(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """POOL_DEFAULTS, overridden by ``base`` (run.json), overridden by flags that were given."""
    values = {**POOL_DEFAULTS, **(base or {})}
    for name in POOL_DEFAULTS:
        given = getattr(args, name, None)
        if given is not None:
            values[name] = given
    return values
