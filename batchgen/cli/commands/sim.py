"""`batchgen sim`'s body: the simulator's server (aiohttp.web, Pillow rendering) loads here,
when the command runs, not when the parser is built."""

from __future__ import annotations

from batchgen.sim.cli import main_sim

__all__ = ["main_sim"]
