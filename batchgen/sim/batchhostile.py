"""Output lines of the simulator's Batch API as a hostile or broken provider writes them: a
``[batch:MODE]`` marker in a line's prompt picks the mangling (sim/batches.py writes the file).

``status_abc`` / ``status_huge`` (10³⁰) / ``status_null`` (a valid image with a null status):
a status_code that is not one; ``revised_dict``: a revised_prompt that is an object;
``error_then_ok``: a 500 line, then the ok line, for the same custom_id; ``pad=N``: N KB of
padding inside the body; ``images=K``: the answer's image repeated to K images, whatever
``n`` asked (a provider's bug or a gateway's fan-out); ``b64_lines``: the base64 in MIME lines
(sim/faults.py's ``[sim:b64_lines]``); ``upper_id``: the line's custom_id upper-cased (a
provider or proxy that normalises the ids it was given); ``bomb``: the first image replaced by a
PNG whose header claims 40,000 × 40,000 pixels (a few hundred bytes; a decoder would try to
allocate 1.6 GB).
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib

from batchgen.sim import responses
from batchgen.sim.batchstate import Batch, Line, line_bytes
from batchgen.sim.faults import mime_b64

_MARKER = re.compile(r"\[batch:([a-z0-9_]+(?:=\d+)?)\]")


def marker(line: Line) -> str | None:
    prompt = line.body.get("prompt")
    found = _MARKER.search(prompt) if isinstance(prompt, str) else None
    return found.group(1) if found else None


def mangled(b: Batch, line: Line, body: bytes, mode: str) -> list[bytes]:
    """The output line(s) of ``line`` as a hostile provider writes them (module doc)."""
    ok = line_bytes(b, line, 200, body)
    if mode == "status_abc":
        return [ok.replace(b'"status_code":200', b'"status_code":"abc"', 1)]
    if mode == "status_huge":
        return [ok.replace(b'"status_code":200', b'"status_code":' + b"1" + b"0" * 30, 1)]
    if mode == "status_null":
        return [ok.replace(b'"status_code":200', b'"status_code":null', 1)]
    if mode == "revised_dict":
        doc = json.loads(body)
        for item in doc["data"]:
            item["revised_prompt"] = {"text": "a dict, not a string"}
        return [line_bytes(b, line, 200, json.dumps(doc).encode())]
    if mode == "error_then_ok":
        err = responses.FAULT_ERRORS["server"]
        return [line_bytes(b, line, err.status, json.dumps(err.body()).encode()), ok]
    if mode.startswith("pad="):
        pad = b"x" * (int(mode[4:]) * 1024)
        return [line_bytes(b, line, 200, body[:-1] + b',"pad":"' + pad + b'"}')]
    if mode.startswith("images="):
        doc = json.loads(body)
        doc["data"] = [doc["data"][0]] * int(mode[7:])
        return [line_bytes(b, line, 200, json.dumps(doc).encode())]
    if mode == "upper_id":
        cid = json.dumps(line.custom_id).encode()
        return [ok.replace(b'"custom_id": ' + cid, b'"custom_id": ' + cid.upper(), 1)]
    if mode == "b64_lines":
        doc = json.loads(body)
        for item in doc["data"]:
            item["b64_json"] = mime_b64(base64.b64decode(item["b64_json"]))
        return [line_bytes(b, line, 200, json.dumps(doc).encode())]
    if mode == "bomb":
        doc = json.loads(body)
        doc["data"][0]["b64_json"] = base64.b64encode(bomb_png(40_000, 40_000)).decode()
        return [line_bytes(b, line, 200, json.dumps(doc).encode())]
    return [ok]


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG whose header claims ``width`` × ``height`` 8-bit grey pixels; its data is
    a few hundred bytes of zeros."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
