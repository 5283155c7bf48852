"""The one shape of a worker pool, shared by the live pool (runner/pool.py) and the judging
pool (quality/score.py):

    feed ──► bounded channel ──► N workers          watchdog (stall, reachability) beside them

``control.cancel()`` cancels the workers (their requests in flight); the watchdog is cancelled
when the workers are done. What a worker does with an item, and what the feed reads, are the
caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchgen.limits.stop import RunControl

T = TypeVar("T")


async def run_workers(
    feed: Callable[[MemoryObjectSendStream[T]], Coroutine[Any, Any, None]],
    work: Callable[[MemoryObjectReceiveStream[T]], Coroutine[Any, Any, None]],
    *,
    workers: int,
    buffer: int,
    control: RunControl,
    watchdog: Callable[[], Coroutine[Any, Any, None]],
) -> None:
    """Run ``feed(send)`` and ``workers`` × ``work(receive)`` over a channel of ``buffer``
    items until the feed is exhausted and every worker has returned. The feed closes ``send``
    when it is done; each worker gets its own clone of the receiving end."""
    send, receive = anyio.create_memory_object_stream[T](buffer)
    async with anyio.create_task_group() as outer:
        outer.start_soon(watchdog)
        with anyio.CancelScope() as pool, control.cancels(pool):
            async with anyio.create_task_group() as tg:
                tg.start_soon(feed, send)
                async with receive:
                    for _ in range(workers):
                        tg.start_soon(work, receive.clone())
        outer.cancel_scope.cancel()
