"""The simulator in a process of its own, so the client under test has a GIL to itself.

``python -m bench.simproc '<SimConfig knobs as JSON>'`` serves on a free 127.0.0.1 port and
prints the base URL; :class:`SimProcess` starts it, reads the URL and talks to the control
routes (``/_sim/stats``, ``/_sim/reset``, ``/_sim/config``) over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import urllib.request
from typing import Any

from batchgen.sim import SimConfig, serve_forever
from batchgen.sim.runner import LOOPBACK
from bench.proc import REPO

_URL = re.compile(r"base URL (http://\S+/v1)")
_START_TIMEOUT_S = 30.0


class SimProcess:
    """``with SimProcess(rpm=600, latency_mean=0.3) as sim:`` → ``sim.base_url``,
    ``sim.stats()``."""

    def __init__(self, **knobs: Any) -> None:
        # fail here, in the caller's process, on a bad knob rather than in the child
        SimConfig().updated(knobs)
        self.knobs = knobs
        self.base_url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> SimProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.simproc", json.dumps(self.knobs)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        match = _URL.search(line)
        if match is None:
            self.__exit__(None, None, None)
            msg = f"bench: the simulator process did not start (it printed {line!r}); run "
            msg += f"`python -m bench.simproc '{json.dumps(self.knobs)}'` to see why"
            raise RuntimeError(msg)
        self.base_url = match.group(1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def _call(self, method: str, route: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.root_url}{route}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=_START_TIMEOUT_S) as resp:
            return json.loads(resp.read())

    def stats(self, *, timeline: bool = True) -> dict[str, Any]:
        """``GET /_sim/stats``: received, outcomes, images_served, accepted [[t, n], ...]."""
        return self._call("GET", f"/_sim/stats?timeline={int(timeline)}")

    def reset(self) -> float:
        """Counters to zero, buckets full, the limit schedules back at t=0; returns that t0 on
        the simulator's monotonic clock (its timeline's, common to every process here)."""
        return float(self._call("POST", "/_sim/reset", {})["t0"])

    def update(self, **knobs: Any) -> dict[str, Any]:
        return self._call("POST", "/_sim/config", knobs)


def main(argv: list[str]) -> int:
    knobs = json.loads(argv[0]) if argv else {}
    config = SimConfig().updated(knobs)
    try:
        asyncio.run(serve_forever(config, LOOPBACK, 0))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
