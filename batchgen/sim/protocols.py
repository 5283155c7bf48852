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
A submitted task is ready after the request's simulated latency. The shared core is
sim/protocolcore.py; Gemini is sim/gemini.py; BFL and fal, which submit then poll, sim/polled.py.
"""

from __future__ import annotations

from aiohttp import web

from batchgen.sim.front import SimFront
from batchgen.sim.gemini import GeminiSim
from batchgen.sim.polled import PolledSims


def add_routes(app: web.Application, server: SimFront) -> None:
    gemini, polled = GeminiSim(server), PolledSims(server)
    app.router.add_post("/v1beta/models/{model}:generateContent", gemini.gemini)
    app.router.add_post("/bfl/v1/{model}", polled.bfl_submit)
    app.router.add_get("/bfl/v1/get_result", polled.bfl_poll)
    app.router.add_get("/fal/{model:.+}/requests/{rid}/status", polled.fal_status)
    app.router.add_get("/fal/{model:.+}/requests/{rid}", polled.fal_result)
    app.router.add_post("/fal/{model:.+}", polled.fal_submit)
