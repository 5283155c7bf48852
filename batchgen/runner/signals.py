"""Ctrl-C, SIGTERM and SIGHUP during a session: stop dispatching first, cancel second. The one
signal watcher: the live pool, the judging pool and the Batch API's following all use it, so
each catches the same signals (SIGHUP too: the terminal closed, ssh dropped)."""

from __future__ import annotations

import signal
from collections.abc import Callable

import anyio

from batchgen.errors import ErrorClass
from batchgen.limits.stop import RunControl

Say = Callable[[str, str | None], None]


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def watch_signals(
    control: RunControl, grace_s: float, say: Say, *, stopping: str | None = None
) -> None:
    """First Ctrl-C/SIGTERM/SIGHUP (the terminal closed, ssh dropped): stop dispatching, let
    requests in flight finish for grace_s. Second (or the grace running out): cancel them at
    once (``control.cancel``: what is attached with ``control.cancels``). Rows of what
    finished are flushed either way. The pool's end cancels this watcher.

    ``stopping``: what the first signal does, said after its name, when it is not the
    default's wait (the Batch API's following: grace 0, "stopped following; ...").
    ``say(text, style)`` must not raise: after SIGHUP the terminal may be gone."""
    with anyio.open_signal_receiver(*SIGNALS) as signals:
        received = signals.__aiter__()
        signum = await received.__anext__()
        name = signal.Signals(signum).name
        control.stop(ErrorClass.CANCELLED, f"interrupted by {name}")
        say(
            f"{name}: {stopping}"
            if stopping
            else f"{name}: stopping — no new requests; waiting up to {grace_s:g}s for "
            "requests in flight (Ctrl-C again to cancel them now)",
            "yellow",
        )
        if grace_s > 0:
            with anyio.move_on_after(grace_s):
                await received.__anext__()
                say("cancelling requests in flight", "red")
        control.cancel()
