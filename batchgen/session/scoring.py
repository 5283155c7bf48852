"""``batchgen score``'s session: under the run's lock, score every saved image without a
verdict of the scorer the flags name (or the last one), within --max-cost."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from batchgen.config import PoolConfig, RunConfig
from batchgen.money.spent import spent
from batchgen.quality.session import (
    ScoreResult,
    ScorerSpec,
    local_scorer_or_usage_error,
    require_judge_price,
    score_run,
    scorer_spec,
)
from batchgen.quality.store import load_scorer
from batchgen.runlog.rundir import RunDir
from batchgen.runner.signals import Say
from batchgen.session.connect import resolve_connection, sim_config
from batchgen.session.ledgering import judge_to_ledger
from batchgen.session.prepare import load_prices


def score_directory(
    run_dir: str | Path, flags: Mapping[str, Any], *, say: Say | None = None
) -> tuple[ScorerSpec, ScoreResult]:
    """Score the run directory's images; raises UsageError (RunDirError) before any."""
    cfg = RunConfig.build(flags)
    rundir = RunDir(run_dir)
    with rundir.lock():
        manifest = rundir.load()
        spec = scorer_spec(flags, load_scorer(rundir.path), manifest.get("settings") or {})
        local = local_scorer_or_usage_error(spec)
        prices = load_prices(cfg.prices, cfg.price_per_image)
        require_judge_price(spec, prices, cfg.max_cost)
        cap = None
        if cfg.max_cost is not None:
            cap = max(0.0, cfg.max_cost - spent(rundir.path).total)
        judge = None
        if spec.kind == "judge":
            judge = resolve_connection(spec.provider, spec.base_url, spec.api_key_env)
        sims = sim_config(cfg) if spec.provider == "sim" else None
        if say is not None:
            say(f"scoring {rundir.path} with {spec.id}", None)
        result = anyio.run(
            lambda: score_run(
                rundir.path,
                spec,
                run_id=manifest["run_id"],
                pool=PoolConfig.build(None, flags),
                prices=prices,
                cap_usd=cap,
                connection=judge,
                sim_config=sims,
                local_scorer=local,
                rescore=bool(flags.get("rescore")),
                say=say,
                quiet=cfg.quiet,
            )
        )
        judge_to_ledger(cfg, manifest, rundir.path)
    return spec, result
