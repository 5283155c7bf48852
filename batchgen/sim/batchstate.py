"""A simulated batch: its input lines, its state machine on the server's clock, its JSON.

A batch follows the real state machine on a compressible clock: ``batch_seconds`` (T) from
creation to completed — validating for 5 % of T, in_progress for 90 % (its lines complete at
an even pace), finalizing for 5 % — plus failed (validation: a bad line, a duplicate
custom_id, or the ``batch_faults`` ``fail=K`` knob), expired (``expire=K``: half-way through,
the rest of its lines are ``batch_expired`` errors) and cancelling (1 % of T) → cancelled
(what finished before the cancel is in the output file). States are computed from the clock
when asked, so nothing runs in the background. Line faults come from the live ``faults`` knob
and prompt directives: content_policy → a 400 line, any other fault → a 500 line, in the
error file. The routes that create, list and cancel batches are in sim/batches.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from batchgen.sim.config import SimConfig
from batchgen.sim.faults import FaultPlanner, parse_directives
from batchgen.sim.models import ApiError, validate

ENDPOINTS = ("/v1/images/generations",)
VALIDATING, RUN_END = 0.05, 0.95  # fractions of T: validation ends, the last line completes
CANCELLING = 0.01  # fraction of T a cancel takes (OpenAI: "up to 10 minutes")
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(slots=True)
class Line:
    number: int  # 1-based line of the input file
    custom_id: str
    body: dict[str, Any]
    fault: str | None  # None, "content_policy", "server", "bad_request:<message>"


@dataclass(slots=True)
class SimFile:
    id: str
    filename: str
    purpose: str
    created_at: int
    data: bytes | None = None  # an uploaded file
    lines: Callable[[], AsyncIterator[bytes]] | None = None  # a generated output/error file

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data or b""),
            "created_at": self.created_at,
            "expires_at": self.created_at + 30 * 86400,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass(slots=True)
class Batch:
    id: str
    number: int  # k-th batch created (1-based)
    input_file_id: str
    endpoint: str
    metadata: dict[str, str] | None
    created_at: int  # wall, unix seconds
    t0: float  # server monotonic at creation
    seconds: float  # T
    lines: list[Line]
    errors: list[dict[str, Any]] = field(default_factory=list)  # validation errors: fails it
    expire: bool = False
    cancel_t: float | None = None
    settled: bool = False
    output_file_id: str | None = None
    error_file_id: str | None = None

    def at(self, frac: float) -> float:
        return self.t0 + frac * self.seconds

    def done_at(self, t: float) -> int:
        """Lines finished by monotonic time ``t`` (before any cancel or expiry)."""
        start, end = self.at(VALIDATING), self.at(RUN_END)
        if t < start:
            return 0
        if t >= end or end <= start:
            return len(self.lines)
        return min(len(self.lines), int(len(self.lines) * (t - start) / (end - start)))

    def state(self, now: float) -> tuple[str, int]:
        """(status, lines executed) at ``now``."""
        if self.errors:
            return ("failed" if now >= self.at(VALIDATING) else "validating"), 0
        if self.expire:
            half = self.at(VALIDATING + (RUN_END - VALIDATING) / 2)
            if now >= half and (self.cancel_t is None or self.cancel_t >= half):
                return "expired", len(self.lines) // 2
        if self.cancel_t is not None:
            done = self.done_at(self.cancel_t)
            over = now >= self.cancel_t + CANCELLING * self.seconds
            return ("cancelled" if over else "cancelling"), done
        if now < self.at(VALIDATING):
            return "validating", 0
        if now < self.at(RUN_END):
            return "in_progress", self.done_at(now)
        if now < self.at(1.0):
            return "finalizing", len(self.lines)
        return "completed", len(self.lines)

    def json(self, now: float) -> dict[str, Any]:
        """The Batch object at ``now`` (OpenAI's schema)."""
        b = self
        status, done = b.state(now)
        ok = sum(1 for line in b.lines[:done] if line.fault is None)
        failed = done - ok
        if status == "expired":
            failed += len(b.lines) - done

        def stamp(frac: float) -> int:
            return b.created_at + round(frac * b.seconds)

        def when(cond: bool, frac: float) -> int | None:
            return stamp(frac) if cond else None

        started = status not in ("validating",) and not b.errors
        cancel_frac = None if b.cancel_t is None else (b.cancel_t - b.t0) / max(b.seconds, 1e-9)
        out = {
            "id": b.id,
            "object": "batch",
            "endpoint": b.endpoint,
            "model": _model(b),
            "errors": {"object": "list", "data": b.errors} if b.errors else None,
            "input_file_id": b.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": b.output_file_id,
            "error_file_id": b.error_file_id,
            "created_at": b.created_at,
            "in_progress_at": when(started, VALIDATING),
            "expires_at": b.created_at + 86400,
            "finalizing_at": when(status in ("finalizing", "completed"), RUN_END),
            "completed_at": when(status == "completed", 1.0),
            "failed_at": when(status == "failed", VALIDATING),
            "expired_at": when(status == "expired", 0.5),
            "cancelling_at": None if cancel_frac is None else stamp(cancel_frac),
            "cancelled_at": when(status == "cancelled", (cancel_frac or 0) + CANCELLING),
            "request_counts": {"total": len(b.lines), "completed": ok, "failed": failed},
            "metadata": b.metadata,
        }
        # the schema's fields are not nullable (but metadata): an unset one is left out
        return {k: v for k, v in out.items() if v is not None or k == "metadata"}


def parse_input(
    data: bytes, endpoint: str, config: SimConfig, planner: FaultPlanner
) -> tuple[list[Line], list[dict[str, Any]]]:
    """An input file's request lines, each with its fault decided now, and its validation
    errors (at most 100; any fails the batch)."""
    lines: list[Line] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()

    def bad(number: int, message: str, code: str = "invalid_request") -> None:
        if len(errors) < 100:
            errors.append({"code": code, "message": message, "param": None, "line": number})

    for number, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            bad(number, "This line is not valid JSON.", "invalid_json_line")
            continue
        cid = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(cid, str) or not cid:
            bad(number, "custom_id is missing.", "missing_required_parameter")
            continue
        if cid in seen:
            bad(number, f"Duplicate custom_id {cid!r}.", "duplicate_custom_id")
            continue
        seen.add(cid)
        if item.get("method") != "POST" or item.get("url") != endpoint:
            bad(number, f"url must be {endpoint} and method POST.", "mismatched_endpoint")
            continue
        body = item.get("body")
        fault = _line_fault(body, config, planner)
        lines.append(Line(number, cid, body if isinstance(body, dict) else {}, fault))
    if not lines and not errors:
        bad(1, "The input file has no requests.", "empty_file")
    return lines, errors


def _line_fault(body: Any, config: SimConfig, planner: FaultPlanner) -> str | None:
    try:
        req = validate(body, config.extra_models)
        directives = parse_directives(req.prompt)
        decided = planner.decide(config, req.prompt, directives)
    except ApiError as err:
        return f"bad_request:{err.status}:{err.message}"
    if decided.fault is not None:
        return "content_policy" if decided.fault == "content_policy" else "server"
    return None


def _model(b: Batch) -> str:
    return str(b.lines[0].body.get("model") or "") if b.lines else ""


def line_bytes(b: Batch, line: Line, status: int, body: bytes) -> bytes:
    """One output/error file line answering ``line`` with ``status`` and ``body``."""
    head = json.dumps({"id": f"batch_req_{b.id}_{line.number}", "custom_id": line.custom_id})
    request_id = f"req_{b.id}_{line.number}"
    return (
        head[:-1].encode()
        + b',"response":{"status_code":%d,"request_id":"%s","body":' % (status, request_id.encode())
        + body
        + b'},"error":null}\n'
    )


async def send_file(request: web.Request, f: SimFile) -> web.StreamResponse:
    """A file's content as JSONL: an upload's bytes at once, a generated file line by line
    (OpenAI's ``/v1/files/{id}/content`` and Gemini's ``:download`` alike)."""
    resp = web.StreamResponse(headers={"Content-Type": "application/jsonl"})
    if f.data is not None:
        resp.content_length = len(f.data)
        await resp.prepare(request)
        await resp.write(f.data)
    else:
        assert f.lines is not None
        await resp.prepare(request)
        async for line in f.lines():
            await resp.write(line)
    await resp.write_eof()
    return resp
