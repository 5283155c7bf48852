"""`--help` of every command: each command's parser offers exactly the flags the command reads
(its READS declaration, which ``flags_of`` enforces when the command runs: a parsed flag
outside it stops the command, so an undeclared flag cannot be accepted and ignored), every
flag has help text, no RST markup shows through, and the simulator's flags stay in their own
group, listed only with ``--provider sim``."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest

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
from batchgen.cli.main import build_parser, main

# every command and the flags it reads (a new command without a declaration fails below)
DECLARED: dict[str, frozenset[str]] = {
    "run": run.READS,
    "resume": resume.READS,
    "plan": plan.READS,
    "report": report.READS,
    "score": score.READS,
    "jobs": export.READS,
    "collect": batch.COLLECT_READS,
    "cancel": batch.CANCEL_READS,
    "models": models.READS,
    "gen": gen.READS,
    "runs": runs.READS,
    "pilot": pilot.READS,
    "library": library.READS,
    "spend": spend.READS,
    "doctor": doctor.READS,
    "export": dataset.READS,
    "ledger": spend.LEDGER_READS,
    "sim": frozenset(name.removeprefix("sim_") for name in common.SIM_FLAGS),
}


def _commands(argv: list[str]) -> dict[str, argparse.ArgumentParser]:
    parser = build_parser(argv)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    """The parser's flags, and those of its actions' own parsers (``library add``)."""
    dests = {a.dest for a in parser._actions if not isinstance(a, argparse._HelpAction)}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                dests |= _dests(child)
    return dests


def _help(command: str, *more: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main([command, *more, "--help"])
    assert done.value.code == 0
    return out.getvalue()


def test_every_command_offers_exactly_the_flags_it_reads() -> None:
    commands = _commands(["--provider", "sim"])
    assert set(commands) == set(DECLARED), "declare the flags of a new command in DECLARED"
    for name, parser in commands.items():
        offered = _dests(parser)
        assert not offered - DECLARED[name], f"{name} accepts flags it ignores"
        assert not DECLARED[name] - offered, f"{name} reads flags it does not offer"


def test_a_flag_outside_the_declaration_stops_the_command() -> None:
    args = argparse.Namespace(run_dir="r", status="ok", output=None, ipm=5.0)
    with pytest.raises(AssertionError, match="ipm"):
        common.flags_of(args, export.READS)
    assert common.flags_of(argparse.Namespace(run_dir="r"), export.READS) == {"run_dir": "r"}


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("collect", ["--detach"]),
        ("collect", ["--deadline", "6h"]),
        ("collect", ["--confirm-above", "5"]),
        ("collect", ["--sim-rpm", "5"]),
        ("score", ["--ipm", "60"]),
        ("score", ["--image-checks"]),
        ("score", ["--providers", "p.toml"]),
        ("plan", ["--yes"]),
        # no prefix matching: `doctor --provider sim` was read as `--providers sim`
        ("doctor", ["--provider", "sim"]),
        ("plan", ["--max-cos", "5"]),
        ("run", ["--conc", "5"]),
    ],
)
def test_flags_a_command_ignores_are_refused(command: str, flag: list[str]) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as done:
        build_parser([command]).parse_args([command, "runs/x", *flag])
    assert done.value.code == 2
    assert "unrecognized arguments" in err.getvalue()


def test_no_parser_takes_abbreviations() -> None:
    def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from parsers(child)

    found = list(parsers(build_parser(["--provider", "sim"])))
    assert len(found) > 20  # the commands and the subcommands of library, spend ledger
    assert [p.prog for p in found if p.allow_abbrev] == []


def test_every_flag_has_help_and_no_markup_shows() -> None:
    for name, parser in _commands(["--provider", "sim"]).items():
        for action in parser._actions:
            assert action.help and action.help.strip(), f"{name} {action.dest}: no help text"
            assert "``" not in action.help, f"{name} {action.dest}: RST markup in help"
        assert "``" not in (parser.description or ""), f"{name}: RST markup in description"


def test_simulator_flags_are_grouped_and_listed_only_for_the_simulator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    for command in ("run", "resume", "score"):
        plain = _help(command)
        assert "--sim-rpm" not in plain and "--sim-faults" not in plain
        assert "--provider sim --help" in plain  # the group says how to list them
        shown = _help(command, "--provider", "sim")
        simulator = shown[shown.index("\nsimulator:") :]
        assert "--sim-rpm" in simulator and "--sim-faults" in simulator
        # the simulator's two dozen flags stay out of the plain help; what is left is the
        # command's own flags, a line or two each (run: limits, money, ledger, batch, reuse,
        # scoring, notification: about 130 lines at 80 columns)
        assert len(shown.splitlines()) - len(plain.splitlines()) >= 24
        assert len(plain.splitlines()) < 160, f"{command} --help is long"
    # the flags are accepted whatever the help shows
    args = build_parser(["run"]).parse_args(["run", "jobs.txt", "--sim-rpm", "5"])
    assert args.sim_rpm == 5


# flags a help text names that belong elsewhere: `ray start --head`, and the pilot's
# --apply / run's --from-pilot, named as the other half of the same step
OTHER_COMMANDS_FLAGS = {"--head", "--apply", "--from-pilot"}


def test_a_help_text_names_only_flags_its_command_takes() -> None:
    """`run --provider sim --help` said --sim-model-latency was "instead of --latency" (a flag
    of `batchgen sim` alone) and `score --help` that --no-adapt fixes --ipm (not a flag of
    score): each flag a help text names is one of its own command's."""
    for name, parser in _commands(["--provider", "sim"]).items():
        offered = {o for a in parser._actions for o in a.option_strings}
        for action in parser._actions:
            named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", action.help or ""))
            unknown = named - offered - OTHER_COMMANDS_FLAGS
            assert not unknown, f"{name} {action.option_strings}: names {unknown}"


def test_the_named_flags_have_help() -> None:
    assert "the Batch API's base URL" in _help("cancel")
    assert "json: the same plan" in _help("plan")
    jobs = _help("jobs")
    assert "the run directory (holds run.json)" in jobs


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--rpm", "0"], "rpm must be a number > 0"),
        (["--ipm", "-5"], "ipm must be a number > 0"),
        (["--concurrency", "0"], "concurrency must be a whole number >= 1"),
        (["--max-cost", "-1"], "max_cost must be a number >= 0"),
    ],
)
@pytest.mark.parametrize("command", ["run", "plan"])
def test_plan_and_run_share_flags_and_refuse_the_same_values(
    command: str, flags: list[str], says: str, tmp_path: Any, capsys: Any
) -> None:
    """`plan` takes `run`'s limit and money flags, checked once by RunConfig: the same value
    is refused by both (exit 2) before any job file is read (plan's --rpm took 0 before)."""
    missing = str(tmp_path / "never-read.jsonl")
    code = main([command, missing, *flags])
    err = capsys.readouterr().err
    assert code == 2 and says in " ".join(err.split()), err
    assert "never-read" not in err  # refused before the job file was looked at
