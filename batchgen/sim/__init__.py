"""The built-in OpenAI-compatible images simulator: the demo's default, the tests' server,
the benchmarks' target.

    async with run_sim(SimConfig(rpm=60, faults={"server": 0.1})) as sim:
        client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="sk-test")
        ...
        sim.stats["server"], sim.stats.images_served

Prompts can carry directives for exact tests: ``[sim:server*1]`` (one 500, then success),
``[sim:content_policy]`` (always refused). See :mod:`batchgen.sim.config` for every knob.
"""

from batchgen.sim.cli import add_sim_arguments, main_sim, sim_config_from_args
from batchgen.sim.config import FAULT_CLASSES, SimConfig, SimConfigError, parse_faults
from batchgen.sim.runner import RunningSim, ThreadedSim, run_sim, serve_forever, sim_in_thread
from batchgen.sim.server import SimServer
from batchgen.sim.stats import SimStats

__all__ = [
    "FAULT_CLASSES",
    "RunningSim",
    "SimConfig",
    "SimConfigError",
    "SimServer",
    "SimStats",
    "ThreadedSim",
    "add_sim_arguments",
    "main_sim",
    "parse_faults",
    "run_sim",
    "serve_forever",
    "sim_config_from_args",
    "sim_in_thread",
]
