"""RunConfig: one table of defaults, overridden by run.json, overridden by the flags given."""

from __future__ import annotations

import pytest

from batchgen import ConfigError, RunConfig
from batchgen.config import DEFAULT_CONCURRENCY_CAP, FIXED_CONCURRENCY, POOL_DEFAULTS, PoolConfig


def test_defaults_come_from_the_one_table() -> None:
    cfg = RunConfig.build({})
    assert cfg.pool.record() == dict(POOL_DEFAULTS)
    assert cfg.pool.concurrency_cap == DEFAULT_CONCURRENCY_CAP
    assert PoolConfig(adaptive=False).concurrency_cap == FIXED_CONCURRENCY


def test_flags_win_over_run_json_which_wins_over_the_table() -> None:
    recorded = {
        "pool": {**POOL_DEFAULTS, "rpm": 120.0, "timeout": 30.0},
        "max_cost": 2.0,
        "provider": "sim",
        "sim": {"sim_rpm": 50.0},
        "defaults": {"model": "gpt-image-1"},
    }
    cfg = RunConfig.build({"rpm": 300.0, "model": "ignored on resume"}, recorded)
    assert (cfg.pool.rpm, cfg.pool.timeout, cfg.pool.max_attempts) == (300.0, 30.0, 5)
    assert cfg.max_cost == 2.0 and cfg.provider == "sim" and cfg.sim.rpm == 50.0
    assert cfg.sim_record() == {"sim_rpm": 50.0}  # what run.json keeps again
    # a simulator flag given now wins over run.json's; one not given keeps run.json's
    again = RunConfig.build({"sim_ipm": 20.0, "sim_rpm": None}, recorded)
    assert (again.sim.rpm, again.sim.ipm) == (50.0, 20.0)
    assert cfg.job_defaults == {"model": "gpt-image-1"}  # the run's ids depend on them
    assert "provider" not in cfg.given  # what this session was given, for its record


def test_a_bad_value_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="concurrency must be a whole number"):
        RunConfig.build({"concurrency": 0})
    with pytest.raises(ConfigError, match="max_cost must be a number >= 0"):
        RunConfig.build({"max_cost": -1})
    with pytest.raises(ConfigError, match="provider must be one of"):
        RunConfig.build({"provider": "nope"})


def test_the_api_key_is_never_in_the_record() -> None:
    cfg = RunConfig.build({"api_key": "sk-never-recorded-123456"})
    assert "sk-never" not in repr(cfg) and "sk-never" not in repr(cfg.pool.record())


def test_the_help_quotes_the_table() -> None:
    from batchgen.cli.main import build_parser

    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    text = run.format_help()
    assert f"(default {DEFAULT_CONCURRENCY_CAP};" in " ".join(text.split())
    assert f"(default {POOL_DEFAULTS['timeout']:g})" in " ".join(text.split())


def test_an_endpoints_own_limits_replace_the_runs() -> None:
    """--providers: an endpoint's rpm/ipm/concurrency replace the run's; what it leaves out
    (and every other pool setting) stays the run's."""
    run = PoolConfig.build(None, {"rpm": 60.0, "concurrency": 8, "adaptive": False})
    own = run.with_limits(rpm=600.0, ipm=None, concurrency=None)
    assert (own.rpm, own.ipm, own.concurrency, own.adaptive) == (600.0, None, 8, False)
    assert run.with_limits(rpm=None, ipm=None, concurrency=None) == run


def test_run_json_sim_options_of_another_version_are_skipped_not_fatal() -> None:
    recorded = {"provider": "sim", "sim": {"sim_rpm": 30.0, "sim_gone_option": 1}}
    cfg = RunConfig.build({}, recorded)
    assert cfg.sim.rpm == 30.0 and cfg.sim_record() == {"sim_rpm": 30.0}
    with pytest.raises(ConfigError, match="unknown simulator option 'sim_gone'"):
        RunConfig.build({"sim_gone": 1})  # given now: an error, as any unknown flag
