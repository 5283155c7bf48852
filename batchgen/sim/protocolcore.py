"""The core the simulator's other protocols share (sim/gemini.py, sim/polled.py): one
server's limit, faults and pictures behind each provider's own shapes."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from aiohttp import web

from batchgen.sim import responses
from batchgen.sim.faults import parse_directives
from batchgen.sim.front import SimFront
from batchgen.sim.models import ImageRequest
from batchgen.sim.stats import SERVER_RATE_LIMITED

# ids of tasks, files and Gemini responses, unique across the protocols of one process
IDS = itertools.count(1)


@dataclass
class Outcome:
    """What the shared core decided: ``kind`` is "ok", "limited" or a fault class."""

    kind: str
    retry_after_s: float = 0.0
    latency_s: float = 0.0
    req: ImageRequest | None = None
    limit_by: str = "requests"


def image_request(model: str, prompt: str, n: int, width: int, height: int) -> ImageRequest:
    return ImageRequest(
        model,
        "extra",
        prompt,
        n,
        width,
        height,
        f"{width}x{height}",
        None,
        "png",
        "b64_json",
        "opaque",
    )


class ProtocolCore:
    """What every protocol route shares: the key check, the server's limit and faults
    (:meth:`admit`), the pictures, signed result URLs, Retry-After."""

    def __init__(self, server: SimFront) -> None:
        self.s = server

    def key_ok(self, key: str) -> bool:
        expected = self.s.config.api_key
        return bool(key.strip()) and (expected is None or key.strip() == expected)

    def admit(self, req: ImageRequest) -> Outcome:
        """Count it, check the server's limit, pick the fault (prompt directives, rates)."""
        s = self.s
        s.stats.record_received(req.prompt, s.monotonic())
        directives = parse_directives(req.prompt)
        verdict = s.limiter.check(req.n)
        if not verdict.allowed:
            s.stats.record_outcome(SERVER_RATE_LIMITED)
            return Outcome(
                "limited", verdict.retry_after_s, limit_by=verdict.limited_by or "requests"
            )
        s.stats.record_accepted(s.monotonic(), req.n)
        decision = s.planner.decide(s.config, req.prompt, directives, req)
        kind = decision.fault or "ok"
        if kind == "rate_limit":
            return Outcome(kind, s.config.retry_after_s)
        return Outcome(kind, latency_s=decision.latency_s, req=req)

    async def images(self, req: ImageRequest) -> list[bytes]:
        rendered = await self.s.rendered(req, self.s.config)
        return [img.data for img in rendered]

    def store(self, request: web.Request, data: bytes, *, expired: bool) -> str:
        file_id = f"res-{self.s.config.seed:x}-{next(IDS):x}"
        self.s.store_file(file_id, data)
        if expired:
            self.s.files[file_id] = (data, self.s.monotonic() - 1.0)
        return f"{request.scheme}://{request.host}/v1/images/files/{file_id}.png"

    def retry_headers(self, outcome: Outcome) -> dict[str, str]:
        return responses.retry_headers(outcome.retry_after_s, self.s.config.retry_after_mode)

    # -- Gemini -------------------------------------------------------------------------------

    async def wait(self, outcome: Outcome) -> None:
        if outcome.kind == "timeout":
            await asyncio.sleep(self.s.config.hang_s)
        elif outcome.latency_s > 0:
            await asyncio.sleep(outcome.latency_s)

    # -- submit-then-poll (BFL, fal) ----------------------------------------------------------
