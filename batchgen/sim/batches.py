"""The simulator's Files and Batch APIs (OpenAI's schemas; see tests/data/openapi/).

POST /v1/files (multipart: file, purpose)   GET /v1/files   GET /v1/files/{id}
GET  /v1/files/{id}/content                 (streamed, line by line, never built whole)
POST /v1/batches   GET /v1/batches   GET /v1/batches/{id}   POST /v1/batches/{id}/cancel

A batch follows the real state machine on a compressible clock: ``batch_seconds`` (T) from
creation to completed — validating for 5 % of T, in_progress for 90 % (its lines complete at
an even pace), finalizing for 5 % — plus failed (validation: a bad line, a duplicate
custom_id, or the ``batch_faults`` ``fail=K`` knob), expired (``expire=K``: half-way through,
the rest of its lines are ``batch_expired`` errors) and cancelling (1 % of T) → cancelled
(what finished before the cancel is in the output file). States are computed from the clock
when asked, so nothing runs in the background. Line faults come from the live ``faults`` knob
and prompt directives: content_policy → a 400 line, any other fault → a 500 line, in the error
file.

Counters for tests (in ``GET /_sim/stats`` under ``batch``): ``submitted`` — custom_id →
times it was in a created batch; ``billed`` — custom_id → 200 lines it got; batches created,
files uploaded.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from batchgen.sim import responses
from batchgen.sim.faults import parse_directives
from batchgen.sim.models import ApiError, validate

ENDPOINTS = ("/v1/images/generations",)
_VALIDATING, _RUN_END = 0.05, 0.95  # fractions of T: validation ends, the last line completes
_CANCELLING = 0.01  # fraction of T a cancel takes (OpenAI: "up to 10 minutes")
_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(slots=True)
class _Line:
    number: int  # 1-based line of the input file
    custom_id: str
    body: dict[str, Any]
    fault: str | None  # None, "content_policy", "server", "bad_request:<message>"


@dataclass(slots=True)
class _File:
    id: str
    filename: str
    purpose: str
    created_at: int
    data: bytes | None = None  # an uploaded file
    lines: Callable[[], AsyncIterator[bytes]] | None = None  # a generated output/error file

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "file", "bytes": len(self.data or b""),
            "created_at": self.created_at, "expires_at": self.created_at + 30 * 86400,
            "filename": self.filename, "purpose": self.purpose, "status": "processed",
        }  # fmt: skip


@dataclass(slots=True)
class _Batch:
    id: str
    number: int  # k-th batch created (1-based)
    input_file_id: str
    endpoint: str
    metadata: dict[str, str] | None
    created_at: int  # wall, unix seconds
    t0: float  # server monotonic at creation
    seconds: float  # T
    lines: list[_Line]
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
        start, end = self.at(_VALIDATING), self.at(_RUN_END)
        if t < start:
            return 0
        if t >= end or end <= start:
            return len(self.lines)
        return min(len(self.lines), int(len(self.lines) * (t - start) / (end - start)))

    def state(self, now: float) -> tuple[str, int]:
        """(status, lines executed) at ``now``."""
        if self.errors:
            return ("failed" if now >= self.at(_VALIDATING) else "validating"), 0
        if self.expire:
            half = self.at(_VALIDATING + (_RUN_END - _VALIDATING) / 2)
            if now >= half and (self.cancel_t is None or self.cancel_t >= half):
                return "expired", len(self.lines) // 2
        if self.cancel_t is not None:
            done = self.done_at(self.cancel_t)
            over = now >= self.cancel_t + _CANCELLING * self.seconds
            return ("cancelled" if over else "cancelling"), done
        if now < self.at(_VALIDATING):
            return "validating", 0
        if now < self.at(_RUN_END):
            return "in_progress", self.done_at(now)
        if now < self.at(1.0):
            return "finalizing", len(self.lines)
        return "completed", len(self.lines)


class SimBatches:
    """Files and batches of one simulator; lives on its event loop."""

    def __init__(self, server: Any) -> None:
        self.server = server  # SimServer: config, auth check, renders, fault planner
        self._ids = itertools.count(1)
        self.files: OrderedDict[str, _File] = OrderedDict()
        self.batches: OrderedDict[str, _Batch] = OrderedDict()
        self.submitted: Counter[str] = Counter()
        self.billed: Counter[str] = Counter()
        self.uploads = 0
        self.cancels = 0

    def register(self, app: web.Application) -> None:
        for prefix in ("/v1", ""):
            app.router.add_post(f"{prefix}/files", self._guard(self.upload))
            app.router.add_get(f"{prefix}/files", self._guard(self.list_files))
            app.router.add_get(f"{prefix}/files/{{file_id}}", self._guard(self.get_file))
            app.router.add_get(f"{prefix}/files/{{file_id}}/content", self._guard(self.content))
            app.router.add_post(f"{prefix}/batches", self._guard(self.create))
            app.router.add_get(f"{prefix}/batches", self._guard(self.list_batches))
            app.router.add_get(f"{prefix}/batches/{{batch_id}}", self._guard(self.retrieve))
            app.router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", self._guard(self.cancel))

    def _guard(self, handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                self.server._check_auth(request.headers.get("Authorization", ""))
                return await handler(request)
            except ApiError as err:
                return web.json_response(err.body(), status=err.status)

        return guarded

    def _new_id(self, kind: str) -> str:
        return f"{kind}-sim{self.server.config.seed:x}{next(self._ids):06x}"

    def _now(self) -> float:
        return self.server._monotonic()

    # -- files -----------------------------------------------------------------------------
    async def upload(self, request: web.Request) -> web.Response:
        reader = await request.multipart()
        purpose, filename, data = None, "upload.jsonl", b""
        async for part in reader:
            if not isinstance(part, BodyPartReader):  # a nested multipart: not a form field
                continue
            if part.name == "purpose":
                purpose = (await part.text()).strip()
            elif part.name == "file":
                filename = part.filename or filename
                data = bytes(await part.read())
        if purpose not in ("batch", "assistants", "fine-tune", "vision", "user_data", "evals"):
            raise ApiError(400, f"Invalid purpose {purpose!r}.", param="purpose")
        if purpose == "batch" and not filename.endswith(".jsonl"):
            raise ApiError(400, "The Batch API only supports .jsonl files.", param="file")
        f = _File(self._new_id("file"), filename, purpose, int(time.time()), data=data)
        self.files[f.id] = f
        self.uploads += 1
        return web.json_response(f.json())

    async def list_files(self, request: web.Request) -> web.Response:
        purpose = request.query.get("purpose")
        found = [f for f in reversed(self.files.values()) if purpose in (None, f.purpose)]
        if request.query.get("order") == "asc":
            found.reverse()
        page = _page(found, request, default_limit=10_000, max_limit=10_000)
        data = [f.json() for f in page[0]]
        return web.json_response({
            "object": "list", "data": data, "has_more": page[1],
            "first_id": data[0]["id"] if data else "",
            "last_id": data[-1]["id"] if data else "",
        })  # fmt: skip

    def _file(self, request: web.Request) -> _File:
        for b in self.batches.values():
            self._refresh(b)
        found = self.files.get(request.match_info["file_id"])
        if found is None:
            msg = f"No such File object: {request.match_info['file_id']}"
            raise ApiError(404, msg, param="id", code="not_found")
        return found

    async def get_file(self, request: web.Request) -> web.Response:
        return web.json_response(self._file(request).json())

    async def content(self, request: web.Request) -> web.StreamResponse:
        f = self._file(request)
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

    # -- batches ---------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The body must be a CreateBatchRequest object.")
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            msg = f"Invalid endpoint {endpoint!r}; the simulator batches {', '.join(ENDPOINTS)}."
            raise ApiError(400, msg, param="endpoint")
        if body.get("completion_window") != "24h":
            raise ApiError(400, "completion_window must be '24h'.", param="completion_window")
        metadata = body.get("metadata")
        if metadata is not None and (
            not isinstance(metadata, dict)
            or len(metadata) > 16
            or not all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
        ):
            raise ApiError(400, "metadata: at most 16 string values.", param="metadata")
        source = self.files.get(str(body.get("input_file_id")))
        if source is None or source.data is None or source.purpose != "batch":
            msg = (
                f"No batch input file {body.get('input_file_id')!r} (upload it with purpose batch)."
            )
            raise ApiError(400, msg, param="input_file_id")
        lines, errors = self._parse(source.data, endpoint)
        number = len(self.batches) + 1
        config = self.server.config
        if config.batch_faults.get("fail") == number and not errors:
            errors = [{"code": "invalid_request", "message": "Simulated validation failure "
                       "(batch_faults fail).", "param": None, "line": 1}]  # fmt: skip
        batch = _Batch(
            id=self._new_id("batch"), number=number, input_file_id=source.id, endpoint=endpoint,
            metadata=metadata, created_at=int(time.time()), t0=self._now(),
            seconds=float(config.batch_seconds), lines=lines, errors=errors,
            expire=config.batch_faults.get("expire") == number,
        )  # fmt: skip
        self.batches[batch.id] = batch
        for line in lines:
            self.submitted[line.custom_id] += 1
        return web.json_response(self._json(batch))

    def _parse(self, data: bytes, endpoint: str) -> tuple[list[_Line], list[dict[str, Any]]]:
        lines: list[_Line] = []
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        config = self.server.config

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
            fault: str | None = None
            try:
                req = validate(body, config.extra_models)
                directives = parse_directives(req.prompt)
                decided = self.server._planner.decide(config, req.prompt, directives)
                if decided.fault is not None:
                    fault = "content_policy" if decided.fault == "content_policy" else "server"
            except ApiError as err:
                fault = f"bad_request:{err.status}:{err.message}"
            lines.append(_Line(number, cid, body if isinstance(body, dict) else {}, fault))
        if not lines and not errors:
            bad(1, "The input file has no requests.", "empty_file")
        return lines, errors

    def _json(self, b: _Batch) -> dict[str, Any]:
        self._refresh(b)
        status, done = b.state(self._now())
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
            "id": b.id, "object": "batch", "endpoint": b.endpoint, "model": _model(b),
            "errors": {"object": "list", "data": b.errors} if b.errors else None,
            "input_file_id": b.input_file_id, "completion_window": "24h", "status": status,
            "output_file_id": b.output_file_id, "error_file_id": b.error_file_id,
            "created_at": b.created_at, "in_progress_at": when(started, _VALIDATING),
            "expires_at": b.created_at + 86400,
            "finalizing_at": when(status in ("finalizing", "completed"), _RUN_END),
            "completed_at": when(status == "completed", 1.0),
            "failed_at": when(status == "failed", _VALIDATING),
            "expired_at": when(status == "expired", 0.5),
            "cancelling_at": None if cancel_frac is None else stamp(cancel_frac),
            "cancelled_at": when(status == "cancelled", (cancel_frac or 0) + _CANCELLING),
            "request_counts": {"total": len(b.lines), "completed": ok, "failed": failed},
            "metadata": b.metadata,
        }  # fmt: skip
        # the schema's fields are not nullable (but metadata): an unset one is left out
        return {k: v for k, v in out.items() if v is not None or k == "metadata"}

    def _refresh(self, b: _Batch) -> None:
        """Once terminal: the output and error files exist and the lines that ran are billed."""
        if b.settled:
            return
        status, done = b.state(self._now())
        if status not in _TERMINAL:
            return
        b.settled = True
        if status == "failed":
            return
        ran = b.lines[:done]
        rest = b.lines[done:]
        for line in ran:
            if line.fault is None:
                self.billed[line.custom_id] += 1
        ok = [line for line in ran if line.fault is None]
        bad = [line for line in ran if line.fault is not None]
        code = {"expired": "batch_expired", "cancelled": "batch_cancelled"}.get(status)
        unrun = rest if code else []
        if ok:
            b.output_file_id = self._output(b, ok, f"{b.id}_output.jsonl")
        if bad or unrun:
            b.error_file_id = self._errors(b, bad, unrun, code, f"{b.id}_error.jsonl")

    def _output(self, b: _Batch, ok: list[_Line], name: str) -> str:
        server = self.server

        async def lines() -> AsyncIterator[bytes]:
            for line in ok:
                req = validate(line.body, server.config.extra_models)
                images = await server._rendered(req, server.config)
                items = b",".join(responses.b64_item(img, None, None) for img in images)
                rest = responses.response_fields(req) if req.family == "gpt" else {}
                tail = (b"," + json.dumps(rest).encode()[1:-1]) if rest else b""
                body = b'{"created":%d,"data":[%s]%s}' % (b.created_at, items, tail)
                yield _line_bytes(b, line, 200, body)

        f = _File(self._new_id("file"), name, "batch_output", int(time.time()), lines=lines)
        self.files[f.id] = f
        return f.id

    def _errors(
        self, b: _Batch, bad: list[_Line], unrun: list[_Line], code: str | None, name: str
    ) -> str:
        async def lines() -> AsyncIterator[bytes]:
            for line in bad:
                assert line.fault is not None
                if line.fault.startswith("bad_request:"):
                    _, status, message = line.fault.split(":", 2)
                    err = ApiError(int(status), message)
                else:
                    err = responses.FAULT_ERRORS[line.fault]
                yield _line_bytes(b, line, err.status, json.dumps(err.body()).encode())
            for line in unrun:
                if code == "batch_expired":
                    message = (
                        "This request could not be executed before the completion window expired."
                    )
                else:
                    message = "This request was not executed: the batch was cancelled."
                error = {"code": code, "message": message}
                yield json.dumps({
                    "id": f"batch_req_{b.id}_{line.number}", "custom_id": line.custom_id,
                    "response": None, "error": error,
                }).encode() + b"\n"  # fmt: skip

        f = _File(self._new_id("file"), name, "batch_output", int(time.time()), lines=lines)
        self.files[f.id] = f
        return f.id

    def _batch(self, request: web.Request) -> _Batch:
        found = self.batches.get(request.match_info["batch_id"])
        if found is None:
            msg = f"No batch found with id '{request.match_info['batch_id']}'."
            raise ApiError(404, msg, code="not_found")
        return found

    async def retrieve(self, request: web.Request) -> web.Response:
        return web.json_response(self._json(self._batch(request)))

    async def cancel(self, request: web.Request) -> web.Response:
        b = self._batch(request)
        status, _ = b.state(self._now())
        if status in _TERMINAL or status == "cancelling":
            msg = f"Cannot cancel a batch with status {status!r}."
            raise ApiError(409, msg, code="invalid_state")
        b.cancel_t = self._now()
        self.cancels += 1
        return web.json_response(self._json(b))

    async def list_batches(self, request: web.Request) -> web.Response:
        newest_first = list(reversed(self.batches.values()))
        batches, more = _page(newest_first, request, default_limit=20, max_limit=100)
        data = [self._json(b) for b in batches]
        return web.json_response({
            "object": "list", "data": data, "has_more": more,
            **({"first_id": data[0]["id"], "last_id": data[-1]["id"]} if data else {}),
        })  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        for b in self.batches.values():
            self._refresh(b)
        now = self._now()
        return {
            "batches_created": len(self.batches), "files_uploaded": self.uploads,
            "cancels": self.cancels,
            "statuses": dict(Counter(b.state(now)[0] for b in self.batches.values())),
            "submitted": dict(self.submitted), "billed": dict(self.billed),
        }  # fmt: skip


def _page(
    items: list[Any], request: web.Request, *, default_limit: int, max_limit: int
) -> tuple[list[Any], bool]:
    try:
        limit = min(max(int(request.query.get("limit", default_limit)), 1), max_limit)
    except ValueError:
        raise ApiError(400, "limit must be an integer.", param="limit") from None
    after = request.query.get("after")
    if after:
        ids = [i.id for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return items[:limit], len(items) > limit


def _model(b: _Batch) -> str:
    return str(b.lines[0].body.get("model") or "") if b.lines else ""


def _line_bytes(b: _Batch, line: _Line, status: int, body: bytes) -> bytes:
    head = json.dumps({"id": f"batch_req_{b.id}_{line.number}", "custom_id": line.custom_id})
    request_id = f"req_{b.id}_{line.number}"
    return (
        head[:-1].encode()
        + b',"response":{"status_code":%d,"request_id":"%s","body":' % (status, request_id.encode())
        + body
        + b'},"error":null}\n'
    )
