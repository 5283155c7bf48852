"""Ctrl-C, SIGTERM and SIGHUP during a session: stop dispatching first, cancel second."""

from __future__ import annotations

import signal
from collections.abc import Callable

import anyio

from batchgen.errors import ErrorClass
from batchgen.limits.stop import RunControl

Say = Callable[[str, str | None], None]


async def watch_signals(control: RunControl, grace_s: float, say: Say) -> None:
    """First Ctrl-C/SIGTERM/SIGHUP (the terminal closed, ssh dropped): stop dispatching, let
    requests in flight finish for grace_s. Second (or the grace running out): cancel them at
    once. Rows of what finished are flushed either way. The pool's end cancels this watcher.
    ``say(text, style)`` must not raise: after SIGHUP the terminal may be gone."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        received = signals.__aiter__()
        signum = await received.__anext__()
        name = signal.Signals(signum).name
        control.stop(ErrorClass.CANCELLED, f"interrupted by {name}")
        say(
            f"{name}: stopping — no new requests; waiting up to {grace_s:g}s for "
            "requests in flight (Ctrl-C again to cancel them now)",
            "yellow",
        )
        with anyio.move_on_after(grace_s):
            await received.__anext__()
            say("cancelling requests in flight", "red")
        control.cancel()
