"""Submit-then-poll providers on the simulator: Black Forest Labs (``POST /bfl/v1/{model}``,
key x-key; ``GET /bfl/v1/get_result?id=ID``, its polling_url: Pending / Ready / Request
Moderated / Error) and fal's queue (``POST /fal/{model_id}``, key ``Authorization: Key``;
its status_url IN_QUEUE / IN_PROGRESS / COMPLETED and response_url). A submitted task is
ready after the request's simulated latency; errors are ``{"detail": ...}``."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from batchgen.sim import responses
from batchgen.sim.faults import data_url, wants_data_url
from batchgen.sim.front import SimFront
from batchgen.sim.models import ApiError
from batchgen.sim.protocolcore import IDS, Outcome, ProtocolCore, image_request
from batchgen.sim.stats import OK, UNAUTHORIZED


class PolledSims(ProtocolCore):
    def __init__(self, server: SimFront) -> None:
        super().__init__(server)
        # task id -> {"ready": at (monotonic), "outcome", "url": result urls or None, "n"}
        self.tasks: dict[str, dict[str, Any]] = {}

    def _submit(
        self, request: web.Request, model: str, prompt: str, n: int, size: tuple[int, int]
    ) -> tuple[str, Outcome]:
        outcome = self.admit(image_request(model, prompt, n, *size))
        task = f"{next(IDS):08x}-{self.s.config.seed:04x}"
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

        if not self.key_ok(request.headers.get("x-key", "")):
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
                self.retry_headers(outcome),
            )
        if outcome.kind in ("auth", "quota"):
            self.s.stats.record_outcome(outcome.kind)
            if outcome.kind == "auth":
                return detail(403, "Not authenticated - the key may not use this model")
            return detail(402, "Insufficient credits. Add credits at https://api.bfl.ai")
        url = f"{request.scheme}://{request.host}/bfl/v1/get_result?id={task}"
        return web.json_response({"id": task, "polling_url": url})

    async def bfl_poll(self, request: web.Request) -> web.Response:
        if not self.key_ok(request.headers.get("x-key", "")):
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
        if scheme != "Key" or not self.key_ok(key):
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
            return detail(429, "Too many requests", self.retry_headers(outcome))
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
        ok = header.startswith("Key ") and self.key_ok(header[4:])
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
