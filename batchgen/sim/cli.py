"""Command-line flags for ``batchgen sim`` (the CLI owner wires these into the subcommand)."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from batchgen.sim.config import SimConfig, SimConfigError, parse_faults, parse_schedule
from batchgen.sim.runner import LOOPBACK, serve_forever


def add_sim_arguments(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """Add the simulator's knobs as flags. ``prefix="sim-"`` gives ``--sim-rpm`` etc., for
    commands (like ``run --provider sim``) whose own flags would otherwise collide."""
    p = f"--{prefix}"
    group = parser.add_argument_group("simulator")
    group.add_argument(f"{p}host", default=LOOPBACK, help="interface to bind (default 127.0.0.1)")
    group.add_argument(f"{p}port", type=int, default=8000, help="port; 0 picks a free one")
    group.add_argument(f"{p}seed", type=int, default=0, help="seed for faults, latency, images")
    group.add_argument(f"{p}rpm", type=float, default=None, help="server limit, requests/min")
    group.add_argument(f"{p}ipm", type=float, default=None, help="server limit, images/min")
    group.add_argument(
        f"{p}limit-schedule", default=None, metavar="T:RPM,...",
        help="change the rpm limit at T seconds after start, e.g. '0:60,30:240'",
    )  # fmt: skip
    group.add_argument(f"{p}latency", type=float, default=0.0, help="mean latency, seconds")
    group.add_argument(f"{p}latency-jitter", type=float, default=0.0, help="latency std dev, s")
    group.add_argument(f"{p}latency-dist", choices=("lognormal", "uniform"), default="lognormal")
    group.add_argument(
        f"{p}faults", default="", metavar="CLASS=RATE,...",
        help="fault probabilities, e.g. 'server=0.1,content_policy=0.05'",
    )  # fmt: skip
    group.add_argument(
        f"{p}fail-after", default="", metavar="auth=N|quota=N",
        help="every request after the Nth successful one fails with that class",
    )  # fmt: skip
    group.add_argument(
        f"{p}retry-after", type=float, default=1.0, help="Retry-After of rate_limit faults, s"
    )
    group.add_argument(f"{p}hang", type=float, default=60.0, help="seconds a timeout fault hangs")
    group.add_argument(f"{p}tiny", action="store_true", help="64x64 images whatever the size")
    group.add_argument(
        f"{p}image-kb", type=float, default=None, help="images of about this many KB"
    )
    group.add_argument(f"{p}extra-models", default="", help="more model names, comma-separated")
    group.add_argument(
        f"{p}api-key-env", default=None, metavar="VAR",
        help="accept only the key in this environment variable (default: any bearer key)",
    )  # fmt: skip


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
    extra = tuple(m.strip() for m in (get("extra_models") or "").split(",") if m.strip())
    return SimConfig(
        seed=get("seed", 0),
        latency_mean=get("latency", 0.0),
        latency_jitter=get("latency_jitter", 0.0),
        latency_dist=get("latency_dist", "lognormal"),
        rpm=get("rpm"),
        ipm=get("ipm"),
        limit_schedule=parse_schedule(schedule) if schedule else (),
        faults=parse_faults(get("faults") or ""),
        fail_after=fail_after,
        retry_after_s=get("retry_after", 1.0),
        hang_s=get("hang", 60.0),
        api_key=api_key,
        extra_models=extra,
        tiny=bool(get("tiny", False)),
        image_kb=get("image_kb"),
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
