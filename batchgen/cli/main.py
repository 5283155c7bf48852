"""The `batchgen` command: run, resume, plan, report, jobs, sim.

Building the parser imports only the subcommands' flag definitions (``batchgen/cli/*.py``):
what a subcommand needs to run (aiohttp, pyarrow, the simulator, matplotlib) is imported by
its body (``batchgen/cli/commands/*.py``, loaded by :class:`~batchgen.cli.body.Body` when the
command runs), so `batchgen --help` and a `run` start without paying for the other commands
(and tests/test_startup.py keeps it that way).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from batchgen import __version__
from batchgen.cli import (
    batch,
    common,
    dataset,
    doctor,
    export,
    gen,
    library,
    models,
    pilot,
    plan,
    report,
    resume,
    run,
    runs,
    score,
    spend,
)
from batchgen.cli.body import Body
from batchgen.errors import ErrorClass, is_disk_error
from batchgen.redaction import MASK, looks_like_key, redact, redact_argv
from batchgen.sim.flags import add_sim_arguments


class _Parser(argparse.ArgumentParser):
    """argparse's own errors echo what was typed: `--apikey sk-…` (a flag that does not
    exist) printed the key in "unrecognized arguments". Its messages are redacted like every
    other error (the subcommands' parsers are of this class too: add_subparsers makes its
    parsers of the parent's type).

    No abbreviations: argparse's prefix matching read `doctor --provider sim` (a flag doctor
    does not take) as `--providers sim`, another flag; a flag is spelt out or refused."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # the values of secret-named flags (`--apikey X`, as in run.json's argv), then any word
        # shaped like a key (`--rpm sk-…`; not a path: runs/demo-20261208T101500Z stays), then
        # the patterns every message goes through
        words = redact_argv(message.split(" "))
        shaped = [MASK if "/" not in w and looks_like_key(w.strip("'\",")) else w for w in words]
        super().error(redact(" ".join(shaped)))


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser. ``argv`` (default: the command line) only decides whether `--help`
    lists the --sim-* flags: with ``--provider sim`` it does, else their group says how."""

    common.SHOW_SIM_HELP[0] = common.wants_sim_help(sys.argv[1:] if argv is None else argv)
    parser = _Parser(
        prog="batchgen",
        description="Batch image generation for OpenAI-compatible APIs: rate limits, retries, "
        "a crash-safe Parquet log, resume, cost control and reports.",
    )
    parser.add_argument("--version", action="version", version=f"batchgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # in the order `batchgen --help` lists them
    commands = (run, resume, plan, report, score, export, batch, gen, models, runs, pilot)
    for module in (*commands, library, spend, doctor, dataset):
        module.register(sub)
    sim = sub.add_parser("sim", help="serve the built-in OpenAI-compatible simulator")
    add_sim_arguments(sim)
    sim.set_defaults(func=Body("sim", "main_sim"))
    for command in sub.choices.values():
        _plain_text(command)
    return parser


def _plain_text(parser: argparse.ArgumentParser) -> None:
    """The docstrings a description comes from write code as ``this``: a terminal shows `this`."""
    if parser.description:
        parser.description = parser.description.replace("``", "`")
    for action in parser._actions:
        if action.help and action.help is not argparse.SUPPRESS:
            action.help = action.help.replace("``", "`")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 3
    except OSError as exc:
        if not (is_disk_error(exc) or type(exc).__name__ == "RunLogError"):
            raise
        # outside a session (creating the run, recovery before a resume): nothing half-done
        # is lost, every write is atomic; one line and the stop code
        print(f"batchgen: stopped (disk): {exc}. {ErrorClass.DISK.remedy}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
