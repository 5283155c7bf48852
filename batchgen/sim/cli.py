"""Command-line flags for ``batchgen sim`` (the CLI owner wires these into the subcommand)."""

from __future__ import annotations

import argparse
import asyncio

from batchgen.sim.runner import serve_forever
from batchgen.simconfig import SimConfig, SimConfigError
from batchgen.simoptions import SIM_OPTIONS


def sim_config_from_args(args: argparse.Namespace, *, prefix: str = "") -> SimConfig:
    """A SimConfig from flags added by :func:`add_sim_arguments` (missing ones: default)."""
    dest = prefix.replace("-", "_")
    names = {option.name for option in SIM_OPTIONS}
    options = {
        name.removeprefix(dest): value
        for name, value in vars(args).items()
        if name.startswith(dest) and name.removeprefix(dest) in names
    }
    return SimConfig.from_options(options)


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
