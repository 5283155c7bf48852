"""The built-in OpenAI-compatible images simulator: the demo's default, the tests' server,
the benchmarks' target.

    async with run_sim(SimConfig(rpm=60, faults={"server": 0.1})) as sim:
        client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="sk-test")
        ...
        sim.stats["server"], sim.stats.images_served

Prompts can carry directives for exact tests: ``[sim:server*1]`` (one 500, then success),
``[sim:content_policy]`` (always refused). See :mod:`batchgen.sim.config` for every knob.
"""

from __future__ import annotations

import importlib
from typing import Any

# what the package offers, and the module each name lives in: loaded on first use, so that
# ``batchgen.sim.flags`` (the CLI's --sim-* flags) does not bring aiohttp.web and Pillow along
_EXPORTS = {
    "FAULT_CLASSES": "config",
    "SimConfig": "config",
    "SimConfigError": "config",
    "parse_faults": "config",
    "RunningSim": "runner",
    "ThreadedSim": "runner",
    "run_sim": "runner",
    "serve_forever": "runner",
    "sim_in_thread": "runner",
    "SimServer": "server",
    "SimStats": "stats",
    "add_sim_arguments": "flags",
    "main_sim": "cli",
    "sim_config_from_args": "cli",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'batchgen.sim' has no attribute {name!r}"
        raise AttributeError(msg)
    # lazy: the parser imports batchgen.sim.flags, which loads this package; the server
    # (aiohttp.web, Pillow) loads when one of its names is first used
    value = getattr(importlib.import_module(f"batchgen.sim.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
