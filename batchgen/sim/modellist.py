"""``GET /v1/models`` (also ``/models``, and ``/v1/models/{model}``): the free model list of
the OpenAI API (SDK clients call it first: ``client.models.list()``).

OpenAI answers it without spending anything, which makes it the call `batchgen doctor` uses
to prove a key is accepted and to see which models an endpoint serves. The simulator lists the
image models it validates (sim/models.py) plus its ``extra_models`` and the judge's chat
models, checks the bearer key like every other route, and sends its rate-limit headers. A
model-list call is not an image request: it counts in ``stats["models_listed"]`` only.
"""

from __future__ import annotations

import time

from aiohttp import web

from batchgen.sim.front import SimFront
from batchgen.sim.models import DALLE_MODELS, GPT_IMAGE_MODELS, ApiError

CHAT_MODELS = ("gpt-4o-mini", "gpt-4o")
_CREATED = 1_700_000_000


def add_routes(app: web.Application, front: SimFront) -> None:
    async def handle(request: web.Request) -> web.Response:
        started = time.perf_counter()
        request_id = f"req_models{next(front.request_ids):024x}"
        front.stats.record_models_listed()
        try:
            front.check_auth(request.headers.get("Authorization", ""))
        except ApiError as err:
            return front.json_answer(err.status, err.body(), request_id, started)
        names = sorted({*GPT_IMAGE_MODELS, *DALLE_MODELS, *front.config.extra_models})
        data = [
            {"id": name, "object": "model", "created": _CREATED, "owned_by": "system"}
            for name in (*names, *CHAT_MODELS)
        ]
        wanted = request.match_info.get("model")
        if wanted is None:
            return front.json_answer(200, {"object": "list", "data": data}, request_id, started)
        for model in data:
            if model["id"] == wanted:
                return front.json_answer(200, model, request_id, started)
        missing = ApiError(404, f"The model '{wanted}' does not exist", code="model_not_found")
        return front.json_answer(404, missing.body(), request_id, started)

    for path in ("/v1/models", "/models", "/v1/models/{model}", "/models/{model}"):
        app.router.add_get(path, handle)
