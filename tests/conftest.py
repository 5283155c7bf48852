"""Shared fixtures: the simulator, real HTTP on 127.0.0.1, one per test.

def test_x(sim): ...                                  # default knobs, tiny images
@pytest.mark.parametrize("sim", [{"rpm": 60}], indirect=True)
def test_y(sim): ...                                  # knobs via indirect parametrization
def test_z(make_sim): sim = make_sim(faults={"server": 0.5})   # several, or built mid-test

Scale-size end-to-end scenarios are marked ``@pytest.mark.slow``: left out of a plain
``pytest`` run (``make test``), run by ``pytest -m slow`` (``make bench``). Each has a small
version in the default set that asserts the same behaviour.
"""

from __future__ import annotations

import atexit
import compileall
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from batchgen.sim import SimConfig, ThreadedSim, sim_in_thread
from batchgen.testing import BackoffWaits, testing

# the spend ledger (user data dir) and config.toml (user config dir) of every run a test
# starts, in-process or as a subprocess (cli_env keeps XDG_*), go to a throw-away home: the
# user's real ledger and budgets never see a test
_HOME = tempfile.mkdtemp(prefix="batchgen-tests-")
atexit.register(shutil.rmtree, _HOME, True)
os.environ["XDG_DATA_HOME"] = os.path.join(_HOME, "data")
os.environ["XDG_CONFIG_HOME"] = os.path.join(_HOME, "config")
os.environ.pop("BATCHGEN_LEDGER", None)

# tests want fast renders; a test that checks real dimensions passes tiny=False
_TEST_DEFAULTS: dict[str, Any] = {"tiny": True}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: a scale-size scenario, run by `make bench` (pytest -m slow)"
    )
    if not hasattr(config, "workerinput"):  # once, in the process that starts the workers
        _write_bytecode()


def _write_bytecode() -> None:
    """Compile the checkout's modules to ``__pycache__`` (as ``pip install`` does for a wheel,
    and ``bench.clients.compile_bytecode`` for the benchmarks). With PYTHONDONTWRITEBYTECODE
    set (some shells and CI images set it) an editable checkout is compiled from source by
    every process that imports it: each of the hundreds of ``batchgen`` subprocesses the tests
    start paid ~0.25 s for it (``batchgen --version`` 0.41 s -> 0.16 s with the bytecode)."""
    root = Path(__file__).resolve().parent.parent
    for package in ("batchgen", "bench", "tests"):
        compileall.compile_dir(root / package, quiet=2)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a -m expression, leave the slow scenarios out (``-m slow`` runs them)."""
    if config.getoption("markexpr", ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


@pytest.fixture
def no_backoff() -> Iterator[BackoffWaits]:
    """Backoff waits between a job's attempts off for an in-process run, and counted (a test
    that asserts what is retried, not how long it waited)."""
    with testing() as waits:
        yield waits


@pytest.fixture
def make_sim() -> Iterator[Callable[..., ThreadedSim]]:
    """A factory: ``make_sim(rpm=60, clock=fake)`` starts a simulator stopped at teardown."""
    with ExitStack() as stack:

        def factory(*, clock: Any = None, **knobs: Any) -> ThreadedSim:
            config = SimConfig(**{**_TEST_DEFAULTS, **knobs})
            return stack.enter_context(sim_in_thread(config, clock=clock))

        yield factory


@pytest.fixture(scope="module")
def make_module_sim() -> Iterator[Callable[..., ThreadedSim]]:
    """``make_sim`` for a set-up that a module's tests share (a run made once, copied by each
    test): the simulator stops when the module's last test is done."""
    with ExitStack() as stack:

        def factory(*, clock: Any = None, **knobs: Any) -> ThreadedSim:
            config = SimConfig(**{**_TEST_DEFAULTS, **knobs})
            return stack.enter_context(sim_in_thread(config, clock=clock))

        yield factory


@pytest.fixture
def sim(request: pytest.FixtureRequest, make_sim: Callable[..., ThreadedSim]) -> ThreadedSim:
    """A running simulator; ``indirect`` parametrization passes a dict of knobs."""
    knobs = getattr(request, "param", None) or {}
    return make_sim(**knobs)
