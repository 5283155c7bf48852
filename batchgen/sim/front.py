"""The state every simulator route shares, and the front each request passes through.

One ``SimFront`` holds the live config, the counters, the server's rate limits, the fault
planner, the request ids, the rendered pictures and the dall-e ``url`` file store; it checks a
bearer key, builds the headers of an answer (the rate-limit headers, ``x-request-id``,
``openai-processing-ms``), answers JSON and drops a connection half-way through an answer.
The images API (sim/server.py), the vision judge (sim/chat.py), the other protocols
(sim/protocols.py) and the Batch API (sim/batches.py) all import it; it imports none of them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from batchgen.sim import responses
from batchgen.sim.config import SimConfig
from batchgen.sim.faults import Decision, FaultPlanner, wrong_rounds
from batchgen.sim.limits import ServerLimiter
from batchgen.sim.models import ApiError, ImageRequest
from batchgen.sim.render import (
    IMAGE_CACHE,
    ImageCache,
    ImageKey,
    Rendered,
    encode_item,
    variant_of,
)
from batchgen.sim.stats import SimStats

# answered at once, before the planned latency
FAST_FAULTS = frozenset({"auth", "quota", "rate_limit"})


class SimFront:
    """State behind the routes. Not thread-safe: touch it only from its event loop."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        image_cache: ImageCache = IMAGE_CACHE,
    ) -> None:
        self.config = config or SimConfig()
        self.stats = SimStats()
        self.monotonic = monotonic
        self._images = image_cache
        self.planner = FaultPlanner()
        c = self.config
        self.limiter = ServerLimiter(
            monotonic,
            c.rpm,
            c.ipm,
            c.limit_schedule,
            ipm_schedule=c.ipm_schedule,
            burst_s=c.burst_s,
        )
        self.in_flight = 0  # image requests between arrival and the end of their answer
        self.request_ids = itertools.count(1)
        # dall-e url id -> (image bytes source, expiry); bounded LRU like a blob store's TTL
        self._renders: dict[ImageKey, asyncio.Future[Rendered]] = {}
        self._served_files: dict[str, Rendered] = {}  # config.image_file, read once
        self.files: OrderedDict[str, tuple[bytes | None, float]] = OrderedDict()

    # -- control -------------------------------------------------------------------------
    def update(self, **knobs: Any) -> SimConfig:
        """Apply knobs live (raises SimConfigError naming the bad knob)."""
        self.config = self.config.updated(knobs)
        c = self.config
        self.limiter.configure(
            c.rpm, c.ipm, c.limit_schedule, ipm_schedule=c.ipm_schedule, burst_s=c.burst_s
        )
        return self.config

    def reset(self) -> None:
        """Clear counters, per-prompt attempts and the fail_after tally; refill the limits."""
        self.stats.reset()
        self.planner.reset()
        self.limiter.restart()

    # -- the front -------------------------------------------------------------------------
    def check_auth(self, header: str) -> None:
        """An ``Authorization: Bearer KEY`` header (the configured key, when one is set)."""
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise responses.missing_key()
        expected = self.config.api_key
        if expected is not None and key.strip() != expected:
            raise responses.wrong_key()

    # -- pictures and the url file store -----------------------------------------------------
    async def rendered(
        self, req: ImageRequest, config: SimConfig, round_: int = 1
    ) -> list[Rendered]:
        if config.image_file is not None:
            found = self._served_files.get(config.image_file)
            if found is None:
                data = await asyncio.to_thread(Path(config.image_file).read_bytes)
                found = self._served_files[config.image_file] = encode_item(data)
            return [found] * req.n
        # tiny and image_kb pictures ignore the requested size: one cache entry serves all sizes
        sized = not (config.tiny or config.image_kb)
        width, height = (req.width, req.height) if sized else (0, 0)
        variants = config.variants or (0 if sized else 8)
        # a regeneration round (batchgen resume --regenerate-below) is a new picture; the
        # judge (sim/chat.py) reads quality and wrongness from the mark (none on the
        # benchmarks' image_kb noise)
        source = req.prompt if round_ <= 1 else f"{req.prompt}\x00round{round_}"
        wrong = int(round_ <= wrong_rounds(req.prompt))
        mark = "" if config.image_kb else f"quality={req.quality};wrong={wrong}"
        out = []
        for i in range(req.n):
            key = ImageKey(
                width,
                height,
                req.output_format,
                req.transparent,
                variant_of(source, i, variants),
                config.seed,
                config.tiny,
                config.image_kb,
                mark,
            )
            found = self._images.peek(key)
            out.append(found if found is not None else await self._render_once(key))
        return out

    async def _render_once(self, key: ImageKey) -> Rendered:
        """Render off the event loop (a 4K PNG takes a while), once however many ask at once."""
        task = self._renders.get(key)
        if task is None:
            task = asyncio.ensure_future(asyncio.to_thread(self._images.get, key))
            self._renders[key] = task
            task.add_done_callback(lambda _: self._renders.pop(key, None))
        # shielded: a client that hangs up must not cancel a render others are waiting for
        return await asyncio.shield(task)

    def store_file(self, file_id: str, source: bytes | None) -> None:
        files = self.files
        files[file_id] = (source, self.monotonic() + self.config.url_ttl_s)
        while len(files) > self.config.url_store_max:
            files.popitem(last=False)

    async def handle_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["name"].removesuffix(".png")
        found = self.files.get(file_id)
        if found is None or found[0] is None or found[1] < self.monotonic():
            self.files.pop(file_id, None)
            ttl = self.config.url_ttl_s
            msg = f"Image {file_id!r} does not exist or its url expired (urls live {ttl:g} s)."
            return web.json_response(ApiError(404, msg, code="not_found").body(), status=404)
        self.files.move_to_end(file_id)
        self.stats.record_download()
        data = found[0] if isinstance(found[0], bytes) else b""
        return web.Response(body=data, content_type="image/png")

    # -- answers ---------------------------------------------------------------------------
    async def drop_mid_response(
        self, request: web.Request, payload: bytes, request_id: str, started: float
    ) -> web.StreamResponse:
        """Send the headers and half of ``payload``, then abort the connection."""
        response = web.StreamResponse(status=200, headers=self.headers(request_id, started))
        response.content_type = "application/json"
        response.content_length = len(payload)
        await response.prepare(request)
        await response.write(payload[: len(payload) // 2])
        transport = request.transport
        if transport is not None:
            transport.abort()
        # aiohttp sees the closed transport and gives up on the rest of this answer
        raise asyncio.CancelledError

    def headers(
        self,
        request_id: str,
        started: float,
        extra: dict[str, str] | None = None,
        *,
        limits: bool = True,
    ) -> dict[str, str]:
        send_limits = limits and self.config.ratelimit_headers
        headers = self.limiter.headers() if send_limits else {}
        headers["x-request-id"] = request_id
        headers["openai-processing-ms"] = str(math.ceil((time.perf_counter() - started) * 1000))
        if extra:
            headers.update(extra)
        return headers

    async def fault_before_body(
        self,
        config: SimConfig,
        decision: Decision,
        request_id: str,
        started: float,
        record: Callable[[str], None],
    ) -> web.Response | None:
        """What a planned fault answers before any body is made — auth, quota and a 429 at
        once; after the planned latency (or a timeout's hang), a content refusal, a 500 or an
        HTML 503 — or None when the request goes on to its body. ``record`` counts the fault
        in the route's own stats (images or chat)."""
        fault = decision.fault
        if fault in FAST_FAULTS:
            record(fault)
            err = responses.FAULT_ERRORS[fault]
            extra = None
            if fault == "rate_limit":
                extra = responses.retry_headers(config.retry_after_s, config.retry_after_mode)
            return self.json_answer(err.status, err.body(), request_id, started, extra)
        if fault == "timeout":
            record(fault)
            await asyncio.sleep(config.hang_s)
        elif decision.latency_s > 0:
            await asyncio.sleep(decision.latency_s)
        if fault in ("content_policy", "server"):
            record(fault)
            err = responses.FAULT_ERRORS[fault]
            return self.json_answer(err.status, err.body(), request_id, started)
        if fault == "server_html":
            record(fault)
            headers = self.headers(request_id, started)
            return web.Response(
                status=503, text=responses.HTML_503, content_type="text/html", headers=headers
            )
        return None

    def json_answer(
        self,
        status: int,
        body: dict[str, Any],
        request_id: str,
        started: float,
        extra: dict[str, str] | None = None,
        *,
        limits: bool = True,
    ) -> web.Response:
        headers = self.headers(request_id, started, extra, limits=limits)
        return web.Response(
            status=status,
            body=json.dumps(body).encode(),
            content_type="application/json",
            headers=headers,
        )
