"""The simulator's command-line flags, apart from its server: ``batchgen run``/``resume``
register ``--sim-*`` when their parser is built, which must not load aiohttp.web or Pillow.
The flags come from batchgen.simoptions' table (SIM_OPTIONS), the one place their names,
kinds and defaults are written."""

from __future__ import annotations

import argparse

from batchgen.simoptions import LOOPBACK, RETRY_AFTER_MODES, SIM_OPTIONS

__all__ = ["LOOPBACK", "RETRY_AFTER_MODES", "add_sim_arguments"]


def add_sim_arguments(
    parser: argparse.ArgumentParser, *, prefix: str = "", shown: bool = True
) -> None:
    """Add the simulator's knobs as flags. ``prefix="sim-"`` gives ``--sim-rpm`` etc., for
    commands (like ``run --provider sim``) whose own flags would otherwise collide; there a
    flag not given is None (SimConfig.from_options fills the default, run.json's value wins
    on resume). ``shown=False`` keeps them out of ``--help`` (the group says how to list
    them)."""
    p = f"--{prefix}"
    described = (
        None
        if shown
        else f"{p}* flags tune the built-in simulator (--provider sim); list them with "
        f"`{parser.prog} --provider sim --help`"
    )
    group = parser.add_argument_group("simulator", described)
    for option in SIM_OPTIONS:
        flag = p + option.name.replace("_", "-")
        default = None if prefix else option.default
        text = option.help if shown else argparse.SUPPRESS
        if option.kind is bool:
            group.add_argument(flag, action="store_true", default=default, help=text)
            continue
        group.add_argument(
            flag,
            type=option.kind,
            default=default,
            choices=option.choices,
            metavar=option.metavar,
            help=text,
        )
