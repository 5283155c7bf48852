"""Ways to run the simulator: in-process on the current loop, in a background thread, forever."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aiohttp import web

from batchgen.clock import Clock
from batchgen.sim.config import SimConfig
from batchgen.sim.flags import LOOPBACK
from batchgen.sim.server import SimServer
from batchgen.sim.stats import SimStats

# in-flight answers (a hanging `timeout` fault) get this long to finish when the sim stops
_SHUTDOWN_GRACE_S = 0.25


class RunningSim:
    """A started simulator. ``base_url`` ends in ``/v1`` like OpenAI's."""

    def __init__(self, server: SimServer, host: str, port: int) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.root_url = f"http://{host}:{port}"
        self.base_url = f"{self.root_url}/v1"

    @property
    def stats(self) -> SimStats:
        return self.server.stats

    @property
    def config(self) -> SimConfig:
        return self.server.config

    def update(self, **knobs: Any) -> SimConfig:
        """Change knobs live (call from the simulator's own event loop)."""
        return self.server.update(**knobs)

    def reset(self) -> None:
        self.server.reset()


@asynccontextmanager
async def run_sim(
    config: SimConfig | None = None,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    clock: Clock | None = None,
) -> AsyncIterator[RunningSim]:
    """``async with run_sim(SimConfig(rpm=60)) as sim:`` → ``sim.base_url``; port 0 = a free port.

    ``clock`` drives the server's rate limiter and its accepted-request timeline, so a test
    can make the smooth limit exact; latency and hangs still use real (loop) time.
    """
    server = SimServer(config, monotonic=clock.monotonic if clock is not None else time.monotonic)
    runner = web.AppRunner(
        server.app(),
        handle_signals=False,
        access_log=None,
        handler_cancellation=True,  # a client that gives up stops its hanging handler too
        shutdown_timeout=_SHUTDOWN_GRACE_S,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=2048)
        await site.start()
        bound_port = runner.addresses[0][1]
        yield RunningSim(server, host, bound_port)
    finally:
        await runner.cleanup()


class ThreadedSim(RunningSim):
    """A simulator on its own event loop in a daemon thread; every method is thread-safe."""

    def __init__(self, running: RunningSim, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(running.server, running.host, running.port)
        self.loop = loop

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def on_loop() -> Any:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(on_loop(), self.loop).result(timeout=10)

    def update(self, **knobs: Any) -> SimConfig:
        return self._call(self.server.update, **knobs)

    def reset(self) -> None:
        self._call(self.server.reset)


@contextmanager
def sim_in_thread(
    config: SimConfig | None = None,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    clock: Clock | None = None,
) -> Iterator[ThreadedSim]:
    """``with sim_in_thread(SimConfig(tiny=True)) as sim:`` for synchronous code and tests."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        box["stop"] = stop
        try:
            async with run_sim(config, host=host, port=port, clock=clock) as running:
                box["sim"] = ThreadedSim(running, asyncio.get_running_loop())
                ready.set()
                await stop.wait()
        except BaseException as exc:  # reported to the caller's thread below
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="batchgen-sim", daemon=True)
    thread.start()
    ready.wait(timeout=30)
    if "error" in box or "sim" not in box:
        thread.join(timeout=5)
        msg = f"the simulator did not start on {host}:{port}: {box.get('error', 'timed out')!r}"
        raise RuntimeError(msg) from box.get("error")
    sim: ThreadedSim = box["sim"]
    try:
        yield sim
    finally:
        sim.loop.call_soon_threadsafe(box["stop"].set)
        thread.join(timeout=10)


async def serve_forever(
    config: SimConfig | None = None, host: str = LOOPBACK, port: int = 8000
) -> None:
    """Serve until cancelled (Ctrl-C), printing the base URL clients should use."""
    async with run_sim(config, host=host, port=port) as sim:
        print(f"batchgen simulator listening: base URL {sim.base_url}", flush=True)
        print("  stats: GET /_sim/stats   knobs: POST /_sim/config   Ctrl-C stops", flush=True)
        await asyncio.Event().wait()
