"""A Gemini batch's lines on the simulator: what each request line of
``batchGenerateContent`` asks (inline requests or a file's lines, each a
GenerateContentRequest for images), the fault its prompt directives decide, and the answer a
line that ran gets (an image, a blocked answer ``IMAGE_SAFETY``, or an error Status), in
Gemini's shapes. sim/geminibatch.py serves them over HTTP."""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

from batchgen.sim.batchstate import Batch, Line
from batchgen.sim.faults import parse_directives
from batchgen.sim.front import SimFront
from batchgen.sim.gemini import GEMINI_SIZE
from batchgen.sim.protocolcore import image_request


def read_lines(
    server: SimFront, items: list[Any], model: str, inline: bool
) -> tuple[list[Line], list[dict[str, Any]]]:
    lines: list[Line] = []
    errors: list[dict[str, Any]] = []
    for number, item in enumerate(items, 1):
        try:
            key = item["metadata"]["key"] if inline else item["key"]
            req = item["request"]
            prompt = req["contents"][0]["parts"][0]["text"]
            gen = req["generationConfig"]
            ratio = (gen.get("imageConfig") or {}).get("aspectRatio", "1:1")
            assert "IMAGE" in gen["responseModalities"] and ratio in GEMINI_SIZE
        except (KeyError, IndexError, TypeError, AssertionError):
            errors.append(
                {
                    "code": "invalid_request",
                    "message": f"request {number} is not a GenerateContentRequest for images",
                }
            )
            continue
        decided = server.planner.decide(server.config, prompt, parse_directives(prompt))
        fault = None
        if decided.fault is not None:
            fault = "content_policy" if decided.fault == "content_policy" else "server"
        body = {"model": model, "prompt": prompt, "ratio": ratio}
        lines.append(Line(number, str(key), body, fault))
    if not lines and not errors:
        errors.append({"code": "invalid_request", "message": "The batch has no requests."})
    return lines, errors


async def answer_lines(
    server: SimFront, b: Batch, ran: list[Line], *, billed: Counter[str], inline: bool
) -> list[bytes]:
    out: list[bytes] = []
    for line in ran:
        head = {"key": line.custom_id}
        if line.fault == "server":
            doc: dict[str, Any] = {
                "error": {"code": 13, "message": "An internal error has occurred. (simulated)"}
            }
        elif line.fault == "content_policy":
            doc = {"response": {"candidates": [{"finishReason": "IMAGE_SAFETY", "index": 0}]}}
        else:
            billed[line.custom_id] += 1
            w, h = GEMINI_SIZE[line.body["ratio"]]
            req = image_request(line.body["model"], line.body["prompt"], 1, w, h)
            data = (await server.rendered(req, server.config))[0].data
            parts = [
                {
                    "inlineData": {
                        "mimeType": "image/png",
                        "data": base64.b64encode(data).decode(),
                    }
                }
            ]
            usage = {
                "promptTokenCount": max(1, len(line.body["prompt"]) // 4),
                "candidatesTokenCount": 1290,
            }
            doc = {
                "response": {
                    "candidates": [
                        {
                            "content": {"role": "model", "parts": parts},
                            "finishReason": "STOP",
                            "index": 0,
                        }
                    ],
                    "usageMetadata": usage,
                    "responseId": f"{b.id}-{line.number}",
                }
            }
        if inline:
            doc["metadata"] = head
        else:
            doc = {**head, **doc}
        out.append(json.dumps(doc).encode())
    return out
