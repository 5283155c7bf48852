"""Each setting's default is written once (batchgen.config's table, batchgen.simconfig's for
the simulator) and every front agrees with it: the CLI's parsers leave a flag not given as
None and their help quotes the table, RunConfig (and its records' own field defaults) holds
the table's value, and the API's keyword arguments, not given, give the same RunConfig as no
flags at all (issue 24, acceptance 3)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from types import SimpleNamespace
from typing import Any

import pytest

from batchgen import api
from batchgen.apiargs import KEYWORDS, config_of
from batchgen.batch.follow import _live_seconds
from batchgen.cli.main import build_parser
from batchgen.config import (
    BATCH_DEFAULTS,
    DEFAULT_CONCURRENCY_CAP,
    DEFAULTS,
    FIXED_CONCURRENCY,
    JOB_DEFAULT_NAMES,
    OTHER_DEFAULTS,
    POOL_DEFAULTS,
    BatchConfig,
    PoolConfig,
    RunConfig,
)
from batchgen.simconfig import SimConfig
from batchgen.simoptions import SIM_OPTIONS

# commands whose settings become a RunConfig: their flags must not carry defaults of their own
SESSION_COMMANDS = ("run", "resume", "plan", "gen", "pilot", "score")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def _actions(command: str) -> dict[str, argparse.Action]:
    return {a.dest: a for a in _subparsers()[command]._actions}


def _stated_default(text: str | None) -> str | None:
    """What a help text says the default is: "(default 120)", "(default 256; ...)"."""
    found = re.search(r"\(default:? ([^;),]+)", " ".join((text or "").split()))
    return found.group(1) if found else None


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_the_records_field_defaults_are_the_table() -> None:
    for record, table in ((PoolConfig, POOL_DEFAULTS), (BatchConfig, BATCH_DEFAULTS)):
        fields = {f.name: f.default for f in dataclasses.fields(record)}
        assert {name: fields[name] for name in table} == dict(table), record.__name__
    run_fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    for name, default in OTHER_DEFAULTS.items():
        if name in JOB_DEFAULT_NAMES:
            continue
        assert run_fields[name].default == default, name


def test_a_run_config_of_no_flags_holds_the_table() -> None:
    cfg = RunConfig.build({})
    assert cfg.pool.record() == dict(POOL_DEFAULTS)
    assert cfg.batch.record() == dict(BATCH_DEFAULTS)
    for name, default in OTHER_DEFAULTS.items():
        if name not in JOB_DEFAULT_NAMES:
            assert getattr(cfg, name) == default, name
    assert cfg.sim == SimConfig() and cfg.sim_options == {}


@pytest.mark.parametrize("command", SESSION_COMMANDS)
def test_the_cli_leaves_the_default_to_the_table(command: str) -> None:
    """A flag not given is None (RunConfig fills it from run.json or the table); a store_true
    switch is False, which RunConfig reads as "not given" too."""
    for dest, action in _actions(command).items():
        if dest not in DEFAULTS and not dest.startswith("sim_"):
            continue
        if command == "gen" and dest == "model":
            continue  # `gen`'s own default model: test_gen_names_its_default_model
        if isinstance(action, argparse._StoreTrueAction):
            assert action.default in (None, False), (command, dest)
        else:
            assert action.default is None, (command, dest, action.default)


@pytest.mark.parametrize("command", ["run", "resume", "plan", "pilot"])
def test_the_help_quotes_the_table(command: str) -> None:
    checked = 0
    for dest, action in _actions(command).items():
        stated = _stated_default(action.help)
        if dest not in DEFAULTS or stated is None or DEFAULTS[dest] is None:
            continue
        if isinstance(DEFAULTS[dest], bool) or dest == "batch_max_bytes":
            continue  # said in words ("default on", "200 MB")
        assert stated == _shown(DEFAULTS[dest]), (command, dest, stated)
        checked += 1
    assert checked >= (0 if command == "plan" else 5), command


@pytest.mark.parametrize("command", ["run", "resume", "plan"])
def test_one_concurrency_default_for_every_mode(command: str) -> None:
    """--concurrency's default: the autopilot's cap, or --no-adapt's fixed workers — quoted
    by every command's help, held by PoolConfig, and used by the Batch API's deadline
    estimate of the rest done live (which used to ignore --no-adapt)."""
    text = " ".join((_actions(command)["concurrency"].help or "").split())
    assert f"default {DEFAULT_CONCURRENCY_CAP}" in text or str(DEFAULT_CONCURRENCY_CAP) in text
    assert PoolConfig().concurrency_cap == DEFAULT_CONCURRENCY_CAP
    assert PoolConfig(adaptive=False).concurrency_cap == FIXED_CONCURRENCY
    assert PoolConfig(concurrency=3, adaptive=False).concurrency_cap == 3


def test_the_batch_deadline_estimate_uses_the_pools_concurrency() -> None:
    options = SimpleNamespace(assume_latency_s=10.0)
    adaptive = SimpleNamespace(options=options, pool=PoolConfig())
    fixed = SimpleNamespace(options=options, pool=PoolConfig(adaptive=False))
    # 800 requests of 10 s: 256 in flight take 4 rounds, 8 in flight take 100
    assert _live_seconds(fixed, 800) > 10 * _live_seconds(adaptive, 800)  # type: ignore[arg-type]


def test_the_api_takes_no_default_of_its_own() -> None:
    """The API's settings come through ``**flags``: its signature holds no default of a
    setting, each keyword is a setting of the table named like its flag, and no keyword
    given is the RunConfig of no flag given."""
    for function in (api.run, api.resume):
        params = inspect.signature(function).parameters
        assert not (set(params) & set(DEFAULTS)), function.__name__
    assert set(KEYWORDS) <= set(DEFAULTS)
    flags = set(_actions("run")) | set(_actions("resume"))
    assert set(KEYWORDS) - {"api_key"} <= flags
    assert config_of({}, None) == RunConfig.build({})
    given = {"rpm": None, "timeout": None, "max_cost": None, "adaptive": None}
    # (``given`` records what was passed, so it is left out of the comparison)
    settled = dataclasses.replace(config_of(given, None), given={})
    assert settled == dataclasses.replace(RunConfig.build({}), given={})


def test_the_simulators_options_have_one_default() -> None:
    """SIM_OPTIONS is the table: `batchgen sim`'s flags default to it, `run --sim-*` leave it
    to SimConfig.from_options, and the table's defaults are SimConfig's own."""
    sim = _actions("sim")
    built = SimConfig.from_options({o.name: o.default for o in SIM_OPTIONS})
    assert built == SimConfig() == SimConfig.from_options({})
    for option in SIM_OPTIONS:
        assert sim[option.name].default == option.default, option.name
        stated = _stated_default(option.help)
        if stated is not None and option.default is not None:
            assert stated == _shown(option.default), option.name
        # and each one alone builds SimConfig's own default for its knob
        assert SimConfig.from_options({option.name: option.default}) == SimConfig(), option.name


def test_gen_names_its_default_model() -> None:
    from batchgen.config import DEFAULT_MODEL

    model = _actions("gen")["model"]
    assert model.default == DEFAULT_MODEL and DEFAULT_MODEL in (model.help or "")
