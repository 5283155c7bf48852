"""Gemini's generateContent on the simulator: ``POST /v1beta/models/{model}:generateContent``
(key: x-goog-api-key), answering in Gemini's shapes (``{"error": {"code", "message",
"status"}}``, inline base64 parts, usageMetadata)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from aiohttp import web

from batchgen.sim import responses
from batchgen.sim.faults import mime_b64, wants_b64_lines, wants_data_url
from batchgen.sim.models import ApiError
from batchgen.sim.protocolcore import IDS, ProtocolCore, image_request
from batchgen.sim.stats import OK, UNAUTHORIZED

# Gemini's aspect ratios and the pixels each gives
GEMINI_SIZE = {
    "1:1": (1024, 1024),
    "3:2": (1248, 832),
    "2:3": (832, 1248),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
    "4:3": (1184, 864),
    "3:4": (864, 1184),
}


class GeminiSim(ProtocolCore):
    async def gemini(self, request: web.Request) -> web.Response:
        def error(status: int, grpc: str, message: str, **extra: Any) -> web.Response:
            body = {"error": {"code": status, "message": message, "status": grpc, **extra}}
            return web.json_response(body, status=status)

        if not self.key_ok(request.headers.get("x-goog-api-key", "")):
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
        if ratio not in GEMINI_SIZE:
            return error(400, "INVALID_ARGUMENT", f"Unsupported aspect ratio: {ratio}")
        try:
            outcome = self.admit(
                image_request(request.match_info["model"], prompt, 1, *GEMINI_SIZE[ratio])
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
        await self.wait(outcome)
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
            return web.json_response(_spelled(payload, prompt))
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
        elif wants_b64_lines(prompt) and kind == "ok":  # MIME lines (sim/faults.py)
            b64 = mime_b64(data)
        parts = [
            {"text": "Here is your image."},
            {"inlineData": {"mimeType": "image/png", "data": b64}},
        ]
        payload = {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": usage,
            "responseId": f"gem-{next(IDS):x}",
        }
        return web.json_response(_spelled(payload, prompt))


def _spelled(payload: dict[str, Any], prompt: str) -> dict[str, Any]:
    """``[sim:snake_case]``: the answer's keys in snake_case (sim/faults.py)."""
    return _snake(payload) if "[sim:snake_case]" in prompt else payload


def _snake(value: Any) -> Any:
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value
