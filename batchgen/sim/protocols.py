"""The simulator's other protocols, on the same server, limits, faults and pictures as its
OpenAI images API (prompt directives such as ``[sim:quota]`` work the same on every route):
POST /v1beta/models/{model}:generateContent     Gemini (key: x-goog-api-key)
POST /bfl/v1/{model}                            Black Forest Labs submit (key: x-key)
GET  /bfl/v1/get_result?id=ID                   its polling_url
POST /fal/{model_id}                            fal's queue submit (key: Authorization: Key)
GET  /fal/{model_id}/requests/{id}/status       its status_url
GET  /fal/{model_id}/requests/{id}              its response_url
GET  /v1/images/files/{id}.png                  signed result URLs (fault expired_url: gone)

Each answers in its provider's own shapes: Gemini's ``{"error": {"code", "message",
"status"}}``, BFL's ``{"detail": ...}`` and poll statuses (Pending / Ready / Request
Moderated / Error), fal's IN_QUEUE / IN_PROGRESS / COMPLETED and ``{"detail": ...}``.
A submitted task is ready after the request's simulated latency.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from batchgen.sim import responses
from batchgen.sim.faults import data_url, parse_directives, wants_data_url
from batchgen.sim.front import SimFront
from batchgen.sim.models import ApiError, ImageRequest
from batchgen.sim.stats import OK, SERVER_RATE_LIMITED, UNAUTHORIZED

_IDS = itertools.count(1)
_GEMINI_SIZE = {
    "1:1": (1024, 1024),
    "3:2": (1248, 832),
    "2:3": (832, 1248),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
    "4:3": (1184, 864),
    "3:4": (864, 1184),
}


@dataclass
class Outcome:
    """What the shared core decided: ``kind`` is "ok", "limited" or a fault class."""

    kind: str
    retry_after_s: float = 0.0
    latency_s: float = 0.0
    req: ImageRequest | None = None
    limit_by: str = "requests"


def add_routes(app: web.Application, server: SimFront) -> None:
    sims = ProtocolSims(server)
    app.router.add_post("/v1beta/models/{model}:generateContent", sims.gemini)
    app.router.add_post("/bfl/v1/{model}", sims.bfl_submit)
    app.router.add_get("/bfl/v1/get_result", sims.bfl_poll)
    app.router.add_get("/fal/{model:.+}/requests/{rid}/status", sims.fal_status)
    app.router.add_get("/fal/{model:.+}/requests/{rid}", sims.fal_result)
    app.router.add_post("/fal/{model:.+}", sims.fal_submit)


def _request(model: str, prompt: str, n: int, width: int, height: int) -> ImageRequest:
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


class ProtocolSims:
    def __init__(self, server: SimFront) -> None:
        self.s = server
        # task id -> (ready at (monotonic), outcome, model, result url or None)
        self.tasks: dict[str, dict[str, Any]] = {}

    # -- the shared core ----------------------------------------------------------------------
    def _key_ok(self, key: str) -> bool:
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
        file_id = f"res-{self.s.config.seed:x}-{next(_IDS):x}"
        self.s.store_file(file_id, data)
        if expired:
            self.s.files[file_id] = (data, self.s.monotonic() - 1.0)
        return f"{request.scheme}://{request.host}/v1/images/files/{file_id}.png"

    def _retry(self, outcome: Outcome) -> dict[str, str]:
        return responses.retry_headers(outcome.retry_after_s, self.s.config.retry_after_mode)

    # -- Gemini -------------------------------------------------------------------------------
    async def gemini(self, request: web.Request) -> web.Response:
        def error(status: int, grpc: str, message: str, **extra: Any) -> web.Response:
            body = {"error": {"code": status, "message": message, "status": grpc, **extra}}
            return web.json_response(body, status=status)

        if not self._key_ok(request.headers.get("x-goog-api-key", "")):
            self.s.stats.record_outcome(UNAUTHORIZED)
            details = [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            ]
            return error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                details=details,
            )
        try:
            body = json.loads(await request.read())
            prompt = body["contents"][0]["parts"][0]["text"]
            gen = body["generationConfig"]
            assert "IMAGE" in gen["responseModalities"]
            ratio = (gen.get("imageConfig") or {}).get("aspectRatio", "1:1")
        except (ValueError, KeyError, IndexError, TypeError, AssertionError):
            return error(
                400,
                "INVALID_ARGUMENT",
                "Invalid JSON payload: expected contents[].parts"
                "[].text and generationConfig.responseModalities with IMAGE",
            )
        if ratio not in _GEMINI_SIZE:
            return error(400, "INVALID_ARGUMENT", f"Unsupported aspect ratio: {ratio}")
        try:
            outcome = self.admit(
                _request(request.match_info["model"], prompt, 1, *_GEMINI_SIZE[ratio])
            )
        except ApiError as exc:
            return error(400, "INVALID_ARGUMENT", exc.message)
        kind = outcome.kind
        if kind in ("limited", "rate_limit"):
            retry = [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{max(1, round(outcome.retry_after_s))}s",
                }
            ]
            return error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
                details=retry,
            )
        if kind == "quota":
            self.s.stats.record_outcome(kind)
            return error(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details.",
            )
        if kind == "auth":
            self.s.stats.record_outcome(kind)
            return error(
                403,
                "PERMISSION_DENIED",
                "Permission denied: the API key's project may "
                "not use this model. (simulated auth fault)",
            )
        await self._wait(outcome)
        if kind in ("server", "server_html", "timeout", "disconnect"):
            self.s.stats.record_outcome(kind)
            return error(500, "INTERNAL", "An internal error has occurred. (simulated)")
        usage = {
            "promptTokenCount": max(1, len(prompt) // 4),
            "candidatesTokenCount": 1290,
            "totalTokenCount": max(1, len(prompt) // 4) + 1290,
        }
        if kind == "content_policy":
            self.s.stats.record_outcome(kind)
            payload = {
                "candidates": [{"finishReason": "IMAGE_SAFETY", "index": 0}],
                "usageMetadata": usage,
            }
            return web.json_response(payload)
        assert outcome.req is not None
        data = (await self.images(outcome.req))[0]
        b64 = base64.b64encode(data).decode()
        if kind in ("bad_base64", "truncated_json"):
            b64 = b64[:-3] + "%%"
        elif kind == "not_image":
            b64 = base64.b64encode(responses.NOT_IMAGE).decode()
        self.s.stats.record_outcome(
            OK if kind in ("ok", "expired_url") else kind,
            images=1 if kind in ("ok", "expired_url") else 0,
        )
        if wants_data_url(prompt):  # a gateway's shape: a data: URL where base64 belongs
            b64 = "data:image/png;base64," + b64
        parts = [
            {"text": "Here is your image."},
            {"inlineData": {"mimeType": "image/png", "data": b64}},
        ]
        payload = {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": usage,
            "responseId": f"gem-{next(_IDS):x}",
        }
        return web.json_response(payload)

    async def _wait(self, outcome: Outcome) -> None:
        if outcome.kind == "timeout":
            await asyncio.sleep(self.s.config.hang_s)
        elif outcome.latency_s > 0:
            await asyncio.sleep(outcome.latency_s)

    # -- submit-then-poll (BFL, fal) ----------------------------------------------------------
    def _submit(
        self, request: web.Request, model: str, prompt: str, n: int, size: tuple[int, int]
    ) -> tuple[str, Outcome]:
        outcome = self.admit(_request(model, prompt, n, *size))
        task = f"{next(_IDS):08x}-{self.s.config.seed:04x}"
        ready = self.s.monotonic() + (
            outcome.latency_s if outcome.kind != "timeout" else self.s.config.hang_s
        )
        self.tasks[task] = {"ready": ready, "outcome": outcome, "url": None, "n": n}
        return task, outcome

    async def _result_urls(self, request: web.Request, task: dict[str, Any]) -> list[str]:
        if task["url"] is None:
            outcome = task["outcome"]
            images = await self.images(outcome.req)
            if outcome.kind == "not_image":
                images = [responses.NOT_IMAGE for _ in images]
            expired = outcome.kind == "expired_url"
            if wants_data_url(outcome.req.prompt):
                task["url"] = [data_url(d) for d in images]
            else:
                task["url"] = [self.store(request, d, expired=expired) for d in images]
            ok = outcome.kind == "ok"
            self.s.stats.record_outcome(OK if ok else outcome.kind, images=len(images) if ok else 0)
        return task["url"]

    @staticmethod
    def _size(body: dict[str, Any]) -> tuple[int, int]:
        size = body.get("image_size")
        if isinstance(size, dict):
            return int(size.get("width", 1024)), int(size.get("height", 1024))
        return int(body.get("width", 1024)), int(body.get("height", 1024))

    async def bfl_submit(self, request: web.Request) -> web.Response:
        def detail(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
            return web.json_response({"detail": text}, status=status, headers=headers)

        if not self._key_ok(request.headers.get("x-key", "")):
            self.s.stats.record_outcome(UNAUTHORIZED)
            return detail(403, "Not authenticated - Invalid Authentication")
        try:
            body = json.loads(await request.read())
            prompt = str(body["prompt"])
            task, outcome = self._submit(
                request, request.match_info["model"], prompt, 1, self._size(body)
            )
        except (ValueError, KeyError, TypeError):
            return detail(422, "Invalid request: prompt is required")
        except ApiError as exc:
            return detail(422, exc.message)
        if outcome.kind in ("limited", "rate_limit"):
            return detail(
                429,
                "You have exceeded the number of active tasks or the rate "
                "limit. Please wait and try again.",
                self._retry(outcome),
            )
        if outcome.kind in ("auth", "quota"):
            self.s.stats.record_outcome(outcome.kind)
            if outcome.kind == "auth":
                return detail(403, "Not authenticated - the key may not use this model")
            return detail(402, "Insufficient credits. Add credits at https://api.bfl.ai")
        url = f"{request.scheme}://{request.host}/bfl/v1/get_result?id={task}"
        return web.json_response({"id": task, "polling_url": url})

    async def bfl_poll(self, request: web.Request) -> web.Response:
        if not self._key_ok(request.headers.get("x-key", "")):
            return web.json_response({"detail": "Not authenticated"}, status=403)
        task = self.tasks.get(request.query.get("id", ""))
        if task is None:
            return web.json_response({"id": request.query.get("id"), "status": "Task not found"})
        tid = request.query["id"]
        if self.s.monotonic() < task["ready"]:
            return web.json_response({"id": tid, "status": "Pending", "progress": 0.5})
        kind = task["outcome"].kind
        if kind == "content_policy":
            self.s.stats.record_outcome(kind)
            self.tasks.pop(tid, None)
            details = {"Moderation Reasons": ["simulated"]}
            return web.json_response({"id": tid, "status": "Request Moderated", "details": details})
        if kind in ("server", "server_html", "disconnect", "truncated_json", "bad_base64"):
            self.s.stats.record_outcome(kind)
            self.tasks.pop(tid, None)
            return web.json_response({"id": tid, "status": "Error"})
        urls = await self._result_urls(request, task)
        result = {"sample": urls[0], "prompt": task["outcome"].req.prompt}
        return web.json_response({"id": tid, "status": "Ready", "result": result})

    async def fal_submit(self, request: web.Request) -> web.Response:
        def detail(status: int, text: Any, headers: dict[str, str] | None = None) -> web.Response:
            return web.json_response({"detail": text}, status=status, headers=headers)

        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme != "Key" or not self._key_ok(key):
            self.s.stats.record_outcome(UNAUTHORIZED)
            return detail(401, "Invalid Key Authorization header format or key")
        model = request.match_info["model"]
        try:
            body = json.loads(await request.read())
            n = int(body.get("num_images", 1))
            task, outcome = self._submit(request, model, str(body["prompt"]), n, self._size(body))
        except (ValueError, KeyError, TypeError):
            return detail(422, [{"loc": ["body", "prompt"], "msg": "field required"}])
        except ApiError as exc:
            return detail(422, exc.message)
        if outcome.kind in ("limited", "rate_limit"):
            return detail(429, "Too many requests", self._retry(outcome))
        if outcome.kind == "auth":
            self.s.stats.record_outcome("auth")
            return detail(401, "Unauthorized: the key may not use this application")
        if outcome.kind == "quota":
            self.s.stats.record_outcome("quota")
            return detail(
                403,
                "User is locked. Reason: Exhausted balance. Top up your balance "
                "at fal.ai/dashboard/billing.",
            )
        root = f"{request.scheme}://{request.host}/fal/{model}/requests/{task}"
        return web.json_response(
            {
                "request_id": task,
                "status": "IN_QUEUE",
                "status_url": f"{root}/status",
                "response_url": root,
                "cancel_url": f"{root}/cancel",
            },
            status=200,
        )

    def _fal_task(self, request: web.Request) -> tuple[str, dict[str, Any] | None, bool]:
        header = request.headers.get("Authorization", "")
        ok = header.startswith("Key ") and self._key_ok(header[4:])
        rid = request.match_info["rid"]
        return rid, self.tasks.get(rid), ok

    async def fal_status(self, request: web.Request) -> web.Response:
        rid, task, ok = self._fal_task(request)
        if not ok:
            return web.json_response({"detail": "Unauthorized"}, status=401)
        if task is None:
            return web.json_response({"detail": "Request not found"}, status=404)
        if self.s.monotonic() < task["ready"]:
            return web.json_response({"status": "IN_PROGRESS", "request_id": rid}, status=202)
        return web.json_response({"status": "COMPLETED", "request_id": rid})

    async def fal_result(self, request: web.Request) -> web.Response:
        _rid, task, ok = self._fal_task(request)
        if not ok:
            return web.json_response({"detail": "Unauthorized"}, status=401)
        if task is None or self.s.monotonic() < task["ready"]:
            return web.json_response({"detail": "Request is still in progress"}, status=400)
        kind = task["outcome"].kind
        if kind == "content_policy":
            self.s.stats.record_outcome(kind)
            msg = (
                "The content could not be processed because it contained material flagged by "
                "a content checker."
            )
            detail = [{"type": "content_policy_violation", "msg": msg}]
            return web.json_response({"detail": detail}, status=422)
        if kind in ("server", "server_html", "disconnect", "truncated_json", "bad_base64"):
            self.s.stats.record_outcome(kind)
            return web.json_response({"detail": "Internal Server Error"}, status=500)
        urls = await self._result_urls(request, task)
        images = [{"url": u, "content_type": "image/png"} for u in urls]
        return web.json_response(
            {
                "images": images,
                "has_nsfw_concepts": [False] * len(urls),
                "seed": 42,
                "prompt": task["outcome"].req.prompt,
            }
        )
