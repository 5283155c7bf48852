"""The simulator's HTTP surface: an OpenAI-compatible ``POST /v1/images/generations`` on aiohttp.

POST /v1/images/generations    (also /images/generations)  the images API
POST /v1/images/edits          (also /images/edits)        edits: multipart or JSON (sim/edits.py)
POST /v1/chat/completions      (also /chat/completions)    a vision judge (sim/chat.py)
GET  /v1/models                 (also /models)               the free model list
GET  /v1/images/files/<id>.png                              dall-e ``url`` downloads
GET  /_sim/stats   POST /_sim/reset                         counters (?timeline=0 to skip
GET  /_sim/config  POST /_sim/config                        the accepted list); reset answers
                                                            the schedules' t0; live knobs
/v1/files, /v1/batches                                      the Batch API (sim/batches.py)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from batchgen.sim import chat, modellist, protocols, responses
from batchgen.sim.batches import SimBatches
from batchgen.sim.config import SimConfig, SimConfigError
from batchgen.sim.edits import EditRequest, parse_edit
from batchgen.sim.faults import (
    data_url,
    mime_b64,
    parse_directives,
    wants_b64_lines,
    wants_data_url,
    wants_status_200,
)
from batchgen.sim.front import SimFront
from batchgen.sim.models import ApiError, ImageRequest, validate
from batchgen.sim.render import IMAGE_CACHE, ImageCache, Rendered
from batchgen.sim.stats import (
    CONCURRENCY_LIMITED,
    INVALID_REQUEST,
    MODEL_NOT_FOUND,
    OK,
    SERVER_RATE_LIMITED,
    UNAUTHORIZED,
)


# faults answered at once, before any simulated generation time
class SimServer(SimFront):
    """The images API and the control routes, on the shared front (sim/front.py); the chat
    judge, the other protocols and the Batch API add their routes in ``app``."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        image_cache: ImageCache = IMAGE_CACHE,
    ) -> None:
        super().__init__(config, monotonic=monotonic, image_cache=image_cache)
        self.batches = SimBatches(self)  # the Files and Batch APIs (sim/batches.py)

    def app(self) -> web.Application:
        # edits upload images (up to 16 of < 50 MB each on the real API; the simulator
        # takes bodies up to 128 MB)
        # (redirect_to is read when the app is made: no middleware on the hot path without it)
        moved = [self._moved] if self.config.redirect_to is not None else []
        app = web.Application(client_max_size=128 * 1024 * 1024, middlewares=moved)
        app.router.add_post("/v1/images/generations", self.handle_generate)
        app.router.add_post("/images/generations", self.handle_generate)
        app.router.add_post("/v1/images/edits", self.handle_edit)
        app.router.add_post("/images/edits", self.handle_edit)
        # Azure OpenAI: the same API per deployment, the key in an `api-key` header
        app.router.add_post(
            "/openai/deployments/{deployment}/images/generations", self.handle_generate
        )
        protocols.add_routes(app, self)  # Gemini, Black Forest Labs, fal
        app.router.add_get("/v1/images/files/{name}", self.handle_file)
        app.router.add_get("/images/files/{name}", self.handle_file)
        self.batches.register(app)
        chat.add_routes(app, self)
        # GET /v1/models (and /v1/models/{model}), free: what SDK clients call first
        modellist.add_routes(app, self)
        app.router.add_get("/_sim/stats", self.handle_stats)
        app.router.add_post("/_sim/reset", self.handle_reset)
        app.router.add_get("/_sim/config", self.handle_get_config)
        app.router.add_post("/_sim/config", self.handle_set_config)
        return app

    @web.middleware
    async def _moved(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """``redirect_to``: the API answers 307 to the same path on another origin."""
        target = self.config.redirect_to
        if not target or request.path.startswith("/_sim/"):
            return await handler(request)
        location = target.rstrip("/") + request.path_qs
        return web.Response(status=307, headers={"Location": location})

    # -- the images API --------------------------------------------------------------------
    async def handle_generate(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        return await self._serve(request, body)

    async def handle_edit(self, request: web.Request) -> web.StreamResponse:
        try:
            edit: EditRequest | ApiError = await parse_edit(request, self.config.extra_models)
        except ApiError as err:
            edit = err
        body = edit.body if not isinstance(edit, ApiError) else {}
        return await self._serve(request, body, edit)

    async def _serve(
        self, request: web.Request, body: Any, edit: EditRequest | ApiError | None = None
    ) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = f"req_{self.config.seed:04x}{next(self.request_ids):028x}"
        prompt = body.get("prompt") if isinstance(body, dict) else None
        self.stats.record_received(prompt if isinstance(prompt, str) else None, self.monotonic())
        cap = self.config.max_concurrent
        if cap is not None and self.in_flight >= cap:
            # refused at once, with no hint: no retry-after, no x-ratelimit-*
            self.stats.record_outcome(CONCURRENCY_LIMITED)
            asked = body.get("n", 1) if isinstance(body, dict) else 1
            self.stats.record_refused(self.monotonic(), asked if isinstance(asked, int) else 1)
            err = responses.concurrency_limited()
            return self.json_answer(429, err.body(), request_id, started, limits=False)
        self.in_flight += 1
        self.stats.record_in_flight(self.in_flight)
        try:
            return await self._generate(request, body, request_id, started, edit)
        except ApiError as err:
            outcome = {404: MODEL_NOT_FOUND, 401: UNAUTHORIZED}.get(err.status, INVALID_REQUEST)
            self.stats.record_outcome(outcome)
            return self.json_answer(err.status, err.body(), request_id, started)
        finally:
            # the answer is built (small ones are sent with it); a disconnect cancels us here too
            self.in_flight -= 1

    async def _generate(
        self,
        request: web.Request,
        body: Any,
        request_id: str,
        started: float,
        edit: EditRequest | ApiError | None = None,
    ) -> web.StreamResponse:
        if "deployment" in request.match_info:
            self._check_azure(request, body)
        else:
            self.check_auth(request.headers.get("Authorization", ""))
        if isinstance(edit, ApiError):
            raise edit
        image_tokens = edit.image_tokens if edit is not None else 0
        if body is None:
            msg = (
                "We could not parse the JSON body of your request. Send a JSON object "
                "(Content-Type: application/json) following CreateImageRequest."
            )
            raise ApiError(400, msg)
        config = self.config
        req = validate(body, config.extra_models)
        directives = parse_directives(req.prompt)

        verdict = self.limiter.check(req.n)
        if not verdict.allowed:
            self.stats.record_outcome(SERVER_RATE_LIMITED)
            self.stats.record_refused(self.monotonic(), req.n)
            style = config.limit_message
            if style == "plain":
                err = responses.PLAIN_RATE_LIMITED
            elif style == "auto" and not config.ratelimit_headers:
                err = responses.GENERIC_RATE_LIMITED
            else:
                by = verdict.limited_by or "requests"
                limiter = self.limiter
                limit = limiter.current_rpm() if by == "requests" else limiter.current_ipm()
                requested = req.n if style == "stated" else None
                err = responses.server_rate_limited(
                    req.model, by, limit, verdict.retry_after_s, requested
                )
            retry = responses.retry_headers(verdict.retry_after_s, config.retry_after_mode)
            return self.json_answer(429, err.body(), request_id, started, retry)
        self.stats.record_accepted(self.monotonic(), req.n)

        decision = self.planner.decide(config, req.prompt, directives, req)
        early = await self.fault_before_body(
            config, decision, request_id, started, self.stats.record_outcome
        )
        if early is not None:
            if wants_status_200(req.prompt) and early.content_type == "application/json":
                early.set_status(200)  # [sim:status_200]: the error body, with HTTP 200
            return early
        fault = decision.fault

        images = await self.rendered(req, config, _round_of(request))
        payload = self._success_body(request, req, images, fault, image_tokens)
        if fault in (None, "bad_base64", "not_image") and req.family == "gpt":
            usage = responses.response_fields(req, image_tokens)["usage"]
            self.stats.record_billed(
                "images", req.model, usage["input_tokens"], usage["output_tokens"]
            )
        if fault is None:
            self.stats.record_outcome(OK, images=req.n)
        elif fault == "truncated_json":
            self.stats.record_outcome(fault)
            payload = payload[: len(payload) // 2]
        elif fault in ("bad_base64", "not_image", "expired_url"):
            # expired_url: a `url` answer's file is gone at once; base64 cannot expire
            self.stats.record_outcome(fault)
        elif fault == "disconnect":
            self.stats.record_outcome(fault)
            return await self.drop_mid_response(request, payload, request_id, started)
        headers = self.headers(request_id, started)
        return web.Response(body=payload, content_type="application/json", headers=headers)

    def _check_azure(self, request: web.Request, body: Any) -> None:
        """Azure: ``api-key`` (a bearer header is refused: Azure's key auth does not read it),
        an ``api-version`` query, and the deployment's name standing for the model."""
        key = request.headers.get("api-key", "").strip()
        if not key:
            msg = (
                "Access denied due to missing subscription key. Make sure to include an "
                "api-key header when making requests to an API."
            )
            raise ApiError(401, msg, code="401")
        if self.config.api_key is not None and key != self.config.api_key:
            msg = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make "
                "sure to provide a valid key for an active subscription."
            )
            raise ApiError(401, msg, code="401")
        if not request.query.get("api-version"):
            raise ApiError(404, "Resource not found", code="404")
        if isinstance(body, dict) and not body.get("model"):
            body["model"] = request.match_info["deployment"]

    def _success_body(
        self,
        request: web.Request,
        req: ImageRequest,
        images: list[Rendered],
        fault: str | None,
        image_tokens: int = 0,
    ) -> bytes:
        created = int(time.time())
        revised = responses.revised_prompt(req.prompt) if req.family == "dall-e-3" else None
        if wants_data_url(req.prompt) and fault is None:  # [sim:data_url]: a gateway's shape
            items = [json.dumps({"url": data_url(img.data)}).encode() for img in images]
        elif wants_b64_lines(req.prompt) and fault is None:  # [sim:b64_lines]: MIME base64
            items = [json.dumps({"b64_json": mime_b64(img.data)}).encode() for img in images]
        elif req.response_format == "url":
            items = [self._url_item(request, req, img, fault, revised) for img in images]
        else:
            items = [responses.b64_item(img, fault, revised) for img in images]
        rest = responses.response_fields(req, image_tokens) if req.family == "gpt" else {}
        tail = json.dumps(rest).encode()[1:] if rest else b"}"
        sep = b"," if rest else b""
        return b'{"created":%d,"data":[' % created + b",".join(items) + b"]" + sep + tail

    def _url_item(
        self,
        request: web.Request,
        req: ImageRequest,
        img: Rendered,
        fault: str | None,
        revised: str | None,
    ) -> bytes:
        file_id = f"img-{self.config.seed:x}-{next(self.request_ids):x}"
        source: bytes | None = img.data
        if fault == "not_image":
            source = responses.NOT_IMAGE
        elif fault == "bad_base64":
            source = None  # the download fails: a url that answers 404
        self.store_file(file_id, source)
        if fault == "expired_url":
            self.files[file_id] = (source, self.monotonic() - 1.0)
        item: dict[str, str] = {
            "url": f"{request.scheme}://{request.host}/v1/images/files/{file_id}.png"
        }
        if revised is not None:
            item["revised_prompt"] = revised
        return json.dumps(item).encode()

    # -- control routes --------------------------------------------------------------------
    async def handle_stats(self, request: web.Request) -> web.Response:
        timeline = request.query.get("timeline", "1") not in ("0", "false", "no")
        return web.json_response(
            {**self.stats.snapshot(timeline=timeline), "batch": self.batches.snapshot()}
        )

    async def handle_reset(self, request: web.Request) -> web.Response:
        self.reset()
        # t0: where the limit schedules start, on the same monotonic clock as the timeline
        return web.json_response({"reset": True, "t0": self.limiter.started_at})

    async def handle_get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self.config.public_dict())

    async def handle_set_config(self, request: web.Request) -> web.Response:
        try:
            knobs = await request.json()
            if not isinstance(knobs, dict):
                msg = 'POST /_sim/config takes a JSON object of knobs, e.g. {"rpm": 60}'
                raise SimConfigError(msg)
            self.update(**knobs)
        except (ValueError, TypeError) as exc:
            err = ApiError(400, str(exc), code="invalid_value")
            return web.json_response(err.body(), status=400)
        return web.json_response(self.config.public_dict())


def _round_of(request: web.Request) -> int:
    """The regeneration round batchgen sends (``X-Batchgen-Round``; 1 without it)."""
    try:
        return max(1, int(request.headers.get("X-Batchgen-Round", "1")))
    except ValueError:
        return 1
