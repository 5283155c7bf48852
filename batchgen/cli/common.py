"""Flags shared by `run`, `resume`, `collect` and `score`, and the RunConfig built from them.
The defaults are batchgen.config's table: the help texts quote it, the parser leaves a flag
not given as None, and ``RunConfig.build`` fills it from run.json or the table.

Registering flags must stay cheap: `batchgen --help` and every subcommand's parser are built
before anything runs, so this module imports neither aiohttp (the provider), anyio (the pool)
nor the simulator. tests/test_startup.py fails if one of them comes back.
"""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import Mapping
from typing import Any

from batchgen.cli.money_args import SkippingGroup, add_ledger_arguments, add_money_arguments
from batchgen.cli.notifyargs import NOTIFY_FLAGS
from batchgen.config import (
    DEFAULT_CONCURRENCY_CAP,
    FIXED_CONCURRENCY,
    POOL_DEFAULTS,
    RunConfig,
)
from batchgen.errors import UsageError
from batchgen.provider.base import DEFAULT_BASE_URL
from batchgen.session.outcome import EXIT_FAILED, EXIT_OK, EXIT_STOPPED, EXIT_USAGE
from batchgen.sim.flags import add_sim_arguments
from batchgen.storage.url import check_url

__all__ = [
    "BATCH_FLAGS",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_STOPPED",
    "EXIT_USAGE",
    "JOB_DEFAULT_FLAGS",
    "SESSION_FLAGS",
    "UsageError",
    "add_job_defaults",
    "add_limit_arguments",
    "add_session_arguments",
    "flags_of",
    "prefer_system_allocator",
    "run_config",
]


def add_job_defaults(parser: argparse.ArgumentParser, *, model: str | None = None) -> None:
    """--model, --size, --quality, --n; ``model``: a default --model (`gen`'s)."""
    group = parser.add_argument_group("job defaults (fill what a job leaves out)")
    shown = f" (default {model})" if model else ""
    group.add_argument("--model", default=model, help=f"e.g. gpt-image-1{shown}")
    group.add_argument("--size", help="e.g. 1024x1024")
    group.add_argument("--quality", help="e.g. low, medium, high, standard, hd")
    group.add_argument("--n", type=int, help="images per request")


# ---- which flags each command reads (its parser must offer exactly these: test_cli_help) --
JOB_DEFAULT_FLAGS = frozenset({"model", "size", "quality", "n"})
CONNECTION_FLAGS = frozenset({"provider", "base_url", "api_key_env", "providers"})
LIMIT_FLAGS = frozenset(
    {
        "concurrency",
        "rpm",
        "ipm",
        "adaptive",
        "stall_timeout",
        "max_pause",
        "timeout",
        "max_attempts",
        "grace",
    }
)
OUTPUT_FLAGS = frozenset({"quiet", "image_checks"})
MONEY_FLAGS = frozenset({"prices", "max_cost", "price_per_image", "confirm_above", "yes"})
LEDGER_FLAGS = frozenset({"ledger", "project", "monthly_budget", "project_budget", "on_budget"})


def _sim_flags() -> frozenset[str]:
    """The --sim-* flags' names, from the simulator's own definitions (one list)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_sim_arguments(parser, prefix="sim-")
    return frozenset(vars(parser.parse_args([])))


SIM_FLAGS = _sim_flags()
SESSION_FLAGS = (
    CONNECTION_FLAGS | LIMIT_FLAGS | OUTPUT_FLAGS | MONEY_FLAGS | LEDGER_FLAGS | SIM_FLAGS
)
BATCH_FLAGS = frozenset(
    {
        "via",
        "detach",
        "deadline",
        "poll_interval",
        "poll_max",
        "batch_max_requests",
        "batch_max_bytes",
        "assume_latency",
    }
)

# `--help` lists the --sim-* flags only when the command line asks for the simulator (set by
# batchgen.cli.main before the subcommands register; the flags are accepted either way)
SHOW_SIM_HELP = [False]


def wants_sim_help(argv: list[str]) -> bool:
    """True when ``argv`` says ``--provider sim`` (or ``--provider=sim``)."""
    return "--provider=sim" in argv or any(
        a == "--provider" and b == "sim" for a, b in itertools.pairwise(argv)
    )


def add_session_arguments(
    parser: argparse.ArgumentParser,
    *,
    resume: bool,
    leave_out: frozenset[str] = frozenset(),
    sim: bool = True,
    storage: bool = False,
) -> None:
    """Flags of `run`, and of `resume` where given ones override run.json. Every default is
    None here: RunConfig fills what was not given (run.json, then batchgen.config).
    ``leave_out``: the dests of flags the command does not read (`score` reads no --ipm);
    ``sim=False``: no --sim-* flags (`collect` starts no simulator); ``storage=True``:
    --images-to (`run` and `resume`), in the output group."""
    _add_provider_arguments(parser, leave_out)
    add_limit_arguments(parser, leave_out)
    _add_output_arguments(parser, leave_out, storage)
    add_money_arguments(parser, leave_out=leave_out)
    add_ledger_arguments(parser, leave_out=leave_out)
    if sim:
        add_sim_arguments(parser, prefix="sim-", shown=SHOW_SIM_HELP[0])


def _add_provider_arguments(parser: argparse.ArgumentParser, leave_out: frozenset[str]) -> None:
    conn = SkippingGroup(parser.add_argument_group("provider"), leave_out)
    conn.add_argument(
        "--provider",
        choices=("openai", "sim"),
        default=None,
        help="openai: any OpenAI-compatible API (default); sim: start the built-in simulator",
    )
    conn.add_argument(
        "--base-url",
        metavar="URL",
        help=f"API base URL (default: $OPENAI_BASE_URL, else {DEFAULT_BASE_URL})",
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
        "(docs/providers.md)",
    )


def add_limit_arguments(parser: argparse.ArgumentParser, leave_out: frozenset[str]) -> None:
    """--concurrency, --rpm, --ipm, --no-adapt ... (but ``leave_out``): `run`'s, `plan`'s."""
    d = POOL_DEFAULTS
    limits = SkippingGroup(parser.add_argument_group("limits"), leave_out)
    fixed = "" if "adaptive" in leave_out else f"; {FIXED_CONCURRENCY} with --no-adapt"
    limits.add_argument(
        "--concurrency",
        type=_whole_number,
        metavar="N",
        help="requests in flight at most: a cap on the autopilot's in-flight limit (default "
        f"{DEFAULT_CONCURRENCY_CAP}{fixed})",
    )
    limits.add_argument(
        "--rpm",
        type=_number,
        metavar="N",
        help="requests per minute at most: a ceiling the autopilot never "
        "passes, and where it starts (default: found from the provider)",
    )
    limits.add_argument(
        "--ipm",
        type=_number,
        metavar="N",
        help="images per minute at most (a request with n=4 counts 4); a ceiling like --rpm",
    )
    # the limits this command offers (`score` has no --ipm): the help names no other flag
    fixed_by = "/".join(f"--{n}" for n in ("rpm", "ipm", "concurrency") if n not in leave_out)
    limits.add_argument(
        "--no-adapt",
        dest="adaptive",
        action="store_false",
        default=None,
        help=f"fixed limits: exactly {fixed_by}, no autopilot "
        "(no slow start, no following 429s or x-ratelimit headers)",
    )
    limits.add_argument(
        "--stall-timeout",
        dest="stall_timeout",
        type=_number,
        metavar="SECONDS",
        help="stop (exit 3, jobs pending) when the provider has answered nothing but 429s "
        f"for this long (default {d['stall_timeout']:g})",
    )
    limits.add_argument(
        "--max-pause",
        dest="max_pause",
        type=_number,
        metavar="SECONDS",
        help="hold the pool at most this long for one Retry-After or reset "
        f"(default {d['max_pause']:g}; a longer ask is capped and logged)",
    )
    _add_request_arguments(limits)


def _add_request_arguments(limits: Any) -> None:
    d = POOL_DEFAULTS
    limits.add_argument(
        "--timeout",
        type=_number,
        metavar="SECONDS",
        help=f"seconds per request (default {d['timeout']:g})",
    )
    limits.add_argument(
        "--max-attempts",
        type=_whole_number,
        metavar="N",
        help=f"attempts per job for retryable errors (default {d['max_attempts']})",
    )
    limits.add_argument(
        "--grace",
        type=_number,
        metavar="SECONDS",
        help=f"seconds requests in flight may finish after Ctrl-C (default {d['grace']:g})",
    )


def _add_output_arguments(
    parser: argparse.ArgumentParser, leave_out: frozenset[str], storage: bool
) -> None:
    out = SkippingGroup(parser.add_argument_group("output"), leave_out)
    if storage:
        out.add_argument(
            "--images-to",
            type=_images_url,
            metavar="URL",
            help="write images to an fsspec URL (s3://bucket/prefix/)",
        )
    out.add_argument("--quiet", action="store_true", help="no progress display")
    out.add_argument(
        "--image-checks",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check each saved image in the background (decodable, size, blank, blur, "
        "duplicates) so `batchgen report` only reads the results (default on)",
    )


def add_ray_argument(parser: argparse.ArgumentParser, what: str, after: str) -> None:
    """``--ray [ADDRESS]`` of `run` and `resume` (``what`` runs over the cluster; ``after``:
    the positional the bare flag must follow)."""
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help=f"{what} (pip install 'batchgen[ray]'): ADDRESS of a running cluster (ray start "
        f"--head), else $RAY_ADDRESS, else a cluster of this machine. Put it after {after}, or "
        "write --ray=ADDRESS. See docs/cluster.md",
    )


def flags_of(args: argparse.Namespace, reads: frozenset[str] | None = None) -> dict[str, Any]:
    """The parsed flags by name (the parser's own entries left out). With ``reads`` (the
    command's declaration of the flags it reads), a parsed flag outside it is a bug of the
    parser's (tests/test_cli_help.py walks every command for them): it fails loudly here
    rather than being accepted and ignored. --notify, --on-end and --metadata are read by
    the CLI's observer, not the run's settings (and may hold tokens): never returned."""
    flags = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    if reads is not None:
        stray = sorted(set(flags) - reads)
        if stray:
            msg = f"the parser gives flags this command does not read: {', '.join(stray)}"
            raise AssertionError(msg)
    return {k: v for k, v in flags.items() if k not in NOTIFY_FLAGS}


def run_config(
    args: argparse.Namespace,
    recorded: Mapping[str, Any] | None = None,
    reads: frozenset[str] | None = None,
) -> RunConfig:
    """The flags given, over run.json's settings (``recorded``), over batchgen.config's."""
    return RunConfig.build(flags_of(args, reads), recorded)


def prefer_system_allocator() -> None:
    """Arrow allocations of this process (run, resume, report) go to the system allocator,
    unless the user chose one with ``ARROW_DEFAULT_MEMORY_POOL``. Arrow reads that variable
    once, when pyarrow first allocates: call this before anything imports pyarrow.

    The wheels' default, mimalloc, keeps what is freed: peak RSS of a 100,000-job run 157 MB
    with it, 124 MB with the system allocator, which hands freed pages back (131 and 104 MB
    at 10,000 jobs); a report on a 1M-row log ~765 and ~660 MB, in the same time."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


# ---- --images-to (batchgen.storage): `run` and `resume` only ----------------------------------
STORAGE_FLAGS = frozenset({"images_to"})


def _images_url(text: str) -> str:
    try:
        return check_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _whole_number(text: str) -> int:
    """The text as a number; whether it is in range is RunConfig's to say (batchgen.config
    checks every setting once, for the flags and the API's keyword arguments alike)."""
    try:
        return int(text)
    except ValueError:
        msg = f"expected a whole number, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _number(text: str) -> float:
    """The text as a number (range: RunConfig's check, as for ``_whole_number``)."""
    try:
        return float(text)
    except ValueError:
        msg = f"expected a number, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def output_problem(path: str, flag: str = "-o") -> str | None:
    """None when a file can be written at ``path`` (its missing folders are made, as `gen -o`
    does); else what stops it and the fix, for a one-line error instead of a traceback, said
    before anything is sent or computed. Nothing is written at ``path`` itself."""
    folder = os.path.dirname(path) or "."
    fix = f"give {flag} a file in a folder you can write"
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc} ({exc.filename}); {fix}"
    if os.path.isdir(path):
        return f"cannot write {path}: it is a folder; {fix}"
    if not os.access(folder, os.W_OK):
        return f"cannot write {path}: {folder} is not writable; {fix}"
    return None
