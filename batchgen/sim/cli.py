"""Command-line flags for ``batchgen sim`` (the CLI owner wires these into the subcommand)."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from batchgen.sim.config import SimConfig, SimConfigError, parse_faults, parse_schedule
from batchgen.sim.runner import serve_forever


def sim_config_from_args(args: argparse.Namespace, *, prefix: str = "") -> SimConfig:
    """Build a SimConfig from flags added by :func:`add_sim_arguments` (missing ones = default)."""
    dest = prefix.replace("-", "_")

    def get(name: str, default: Any = None) -> Any:
        return getattr(args, f"{dest}{name}", default)

    key_env = get("api_key_env")
    api_key = None
    if key_env:
        api_key = os.environ.get(key_env)
        if not api_key:
            msg = f"--{prefix}api-key-env {key_env}: that environment variable is empty or unset"
            raise SimConfigError(msg)
    fail_after = {k: int(v) for k, v in parse_faults(get("fail_after") or "").items()}
    schedule = get("limit_schedule")
    ipm_schedule = get("ipm_schedule")
    extra = tuple(m.strip() for m in (get("extra_models") or "").split(",") if m.strip())
    return SimConfig(
        seed=get("seed", 0),
        latency_mean=get("latency", 0.0),
        latency_jitter=get("latency_jitter", 0.0),
        latency_dist=get("latency_dist", "lognormal"),
        latency_profile="models" if get("model_latency", False) else "",
        time_scale=get("time_scale", 1.0),
        limit_message=get("limit_message", "auto"),
        rpm=get("rpm"),
        ipm=get("ipm"),
        limit_schedule=parse_schedule(schedule) if schedule else (),
        ipm_schedule=parse_schedule(ipm_schedule) if ipm_schedule else (),
        burst_s=get("burst", 1.0),
        ratelimit_headers=not get("no_ratelimit_headers", False),
        retry_after_mode=get("retry_after_mode", "both"),
        max_concurrent=get("max_concurrent"),
        faults=parse_faults(get("faults") or ""),
        fail_after=fail_after,
        retry_after_s=get("retry_after", 1.0),
        hang_s=get("hang", 60.0),
        api_key=api_key,
        extra_models=extra,
        tiny=bool(get("tiny", False)),
        image_kb=get("image_kb"),
        batch_seconds=get("batch_seconds") if get("batch_seconds") is not None else 1.0,
        batch_faults=get("batch_faults") or {},
    )


def main_sim(args: argparse.Namespace) -> int:
    """``batchgen sim ...``: serve until Ctrl-C. Returns the exit status."""
    try:
        config = sim_config_from_args(args)
    except SimConfigError as exc:
        print(f"batchgen sim: {exc}")
        return 2
    try:
        asyncio.run(serve_forever(config, args.host, args.port))
    except KeyboardInterrupt:
        return 0
    return 0
