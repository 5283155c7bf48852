"""The simulator's Files and Batch APIs (OpenAI's schemas; see tests/data/openapi/).

POST /v1/files (multipart: file, purpose)   GET /v1/files   GET /v1/files/{id}
GET  /v1/files/{id}/content                 (streamed, line by line, never built whole)
POST /v1/batches   GET /v1/batches   GET /v1/batches/{id}   POST /v1/batches/{id}/cancel

A batch's state machine, its lines and its JSON are in sim/batchstate.py; here are the routes,
and the output and error files a batch gets once it is terminal.

Hostile answers, for tests: ``batch_faults`` (sim/config.py: ``counts_str``,
``errors_list``, ``output_404``, ``no_file_list``, ``no_batch_list``) and a ``[batch:MODE]``
marker in a line's prompt, which mangles that line of the output file: ``status_abc``,
``status_huge`` (10³⁰), ``status_null`` (a valid image with a null status), ``revised_dict``,
``error_then_ok`` (a 500 line, then the ok line, for the same custom_id), ``pad=N`` (N KB of
padding inside the line's body), ``images=K``, ``bomb``: sim/batchhostile.py.

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
from typing import Any

from aiohttp import BodyPartReader, web

from batchgen.sim import responses
from batchgen.sim.batchhostile import mangled, marker
from batchgen.sim.batchstate import (
    ENDPOINTS,
    TERMINAL,
    Batch,
    Line,
    SimFile,
    line_bytes,
    parse_input,
    send_file,
)
from batchgen.sim.front import SimFront
from batchgen.sim.geminibatch import GeminiBatches
from batchgen.sim.models import ApiError, validate


class SimBatches:
    """Files and batches of one simulator; lives on its event loop."""

    def __init__(self, server: SimFront) -> None:
        self.server = server  # config, auth check, renders, fault planner
        self._ids = itertools.count(1)
        self.files: OrderedDict[str, SimFile] = OrderedDict()
        self.batches: OrderedDict[str, Batch] = OrderedDict()
        self.submitted: Counter[str] = Counter()
        self.billed: Counter[str] = Counter()
        self.uploads = 0
        self.cancels = 0
        self.gemini = GeminiBatches(self)  # Gemini's Batch API (sim/geminibatch.py)

    def register(self, app: web.Application) -> None:
        self.gemini.register(app)
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
                self.server.check_auth(request.headers.get("Authorization", ""))
                return await handler(request)
            except ApiError as err:
                return web.json_response(err.body(), status=err.status)

        return guarded

    def _new_id(self, kind: str) -> str:
        return f"{kind}-sim{self.server.config.seed:x}{next(self._ids):06x}"

    def _now(self) -> float:
        return self.server.monotonic()

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
        f = SimFile(self._new_id("file"), filename, purpose, int(time.time()), data=data)
        self.files[f.id] = f
        self.uploads += 1
        return web.json_response(f.json())

    async def list_files(self, request: web.Request) -> web.Response:
        if self.server.config.batch_faults.get("no_file_list"):
            raise ApiError(405, "Method Not Allowed", code="method_not_allowed")
        purpose = request.query.get("purpose")
        found = [f for f in reversed(self.files.values()) if purpose in (None, f.purpose)]
        if request.query.get("order") == "asc":
            found.reverse()
        page = _page(found, request, default_limit=10_000, max_limit=10_000)
        data = [f.json() for f in page[0]]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "has_more": page[1],
                "first_id": data[0]["id"] if data else "",
                "last_id": data[-1]["id"] if data else "",
            }
        )

    def _file(self, request: web.Request) -> SimFile:
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
        lost = self.server.config.batch_faults.get("output_404")
        if lost and any(
            b.number == lost and f.id == b.output_file_id for b in self.batches.values()
        ):
            raise ApiError(404, f"No such File object: {f.id}", param="id", code="not_found")
        return await send_file(request, f)

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
        config = self.server.config
        faults = config.batch_faults
        lines, errors = parse_input(source.data, endpoint, config, self.server.planner)
        number = self.gemini.number()
        if number in (faults.get("fail"), faults.get("errors_list")) and not errors:
            errors = [
                {
                    "code": "invalid_request",
                    "message": "Simulated validation failure (batch_faults fail).",
                    "param": None,
                    "line": 1,
                }
            ]
        batch = Batch(
            id=self._new_id("batch"),
            number=number,
            input_file_id=source.id,
            endpoint=endpoint,
            metadata=metadata,
            created_at=int(time.time()),
            t0=self._now(),
            seconds=float(config.batch_seconds),
            lines=lines,
            errors=errors,
            expire=config.batch_faults.get("expire") == number,
        )
        self.batches[batch.id] = batch
        for line in lines:
            self.submitted[line.custom_id] += 1
        return web.json_response(self._json(batch))

    def _json(self, b: Batch) -> dict[str, Any]:
        self._refresh(b)
        out = b.json(self._now())
        faults = self.server.config.batch_faults
        if faults.get("counts_str") == b.number:
            out["request_counts"] = {k: str(v) for k, v in out["request_counts"].items()}
        if faults.get("errors_list") == b.number and b.errors:
            out["errors"] = list(b.errors)
        return out

    def _refresh(self, b: Batch) -> None:
        """Once terminal: the output and error files exist and the lines that ran are billed."""
        if b.settled:
            return
        status, done = b.state(self._now())
        if status not in TERMINAL:
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

    def _output(self, b: Batch, ok: list[Line], name: str) -> str:
        server = self.server

        async def lines() -> AsyncIterator[bytes]:
            for line in ok:
                req = validate(line.body, server.config.extra_models)
                images = await server.rendered(req, server.config)
                items = b",".join(responses.b64_item(img, None, None) for img in images)
                rest = responses.response_fields(req) if req.family == "gpt" else {}
                tail = (b"," + json.dumps(rest).encode()[1:-1]) if rest else b""
                body = b'{"created":%d,"data":[%s]%s}' % (b.created_at, items, tail)
                mode = marker(line)
                if mode is None:
                    yield line_bytes(b, line, 200, body)
                else:
                    for out in mangled(b, line, body, mode):
                        yield out

        f = SimFile(self._new_id("file"), name, "batch_output", int(time.time()), lines=lines)
        self.files[f.id] = f
        return f.id

    def _errors(
        self, b: Batch, bad: list[Line], unrun: list[Line], code: str | None, name: str
    ) -> str:
        async def lines() -> AsyncIterator[bytes]:
            for line in bad:
                assert line.fault is not None
                if line.fault.startswith("bad_request:"):
                    _, status, message = line.fault.split(":", 2)
                    err = ApiError(int(status), message)
                else:
                    err = responses.FAULT_ERRORS[line.fault]
                yield line_bytes(b, line, err.status, json.dumps(err.body()).encode())
            for line in unrun:
                if code == "batch_expired":
                    message = (
                        "This request could not be executed before the completion window expired."
                    )
                else:
                    message = "This request was not executed: the batch was cancelled."
                error = {"code": code, "message": message}
                yield (
                    json.dumps(
                        {
                            "id": f"batch_req_{b.id}_{line.number}",
                            "custom_id": line.custom_id,
                            "response": None,
                            "error": error,
                        }
                    ).encode()
                    + b"\n"
                )

        f = SimFile(self._new_id("file"), name, "batch_output", int(time.time()), lines=lines)
        self.files[f.id] = f
        return f.id

    def _batch(self, request: web.Request) -> Batch:
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
        if status in TERMINAL or status == "cancelling":
            msg = f"Cannot cancel a batch with status {status!r}."
            raise ApiError(409, msg, code="invalid_state")
        b.cancel_t = self._now()
        self.cancels += 1
        return web.json_response(self._json(b))

    async def list_batches(self, request: web.Request) -> web.Response:
        if self.server.config.batch_faults.get("no_batch_list"):
            raise ApiError(405, "Method Not Allowed", code="method_not_allowed")
        newest_first = list(reversed(self.batches.values()))
        batches, more = _page(newest_first, request, default_limit=20, max_limit=100)
        data = [self._json(b) for b in batches]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "has_more": more,
                **({"first_id": data[0]["id"], "last_id": data[-1]["id"]} if data else {}),
            }
        )

    def snapshot(self) -> dict[str, Any]:
        for b in self.batches.values():
            self._refresh(b)
        now = self._now()
        statuses = [b.state(now)[0] for b in self.batches.values()] + self.gemini.statuses()
        return {
            "batches_created": len(self.batches) + len(self.gemini.batches),
            "files_uploaded": self.uploads,
            "cancels": self.cancels,
            "statuses": dict(Counter(statuses)),
            "submitted": dict(self.submitted),
            "billed": dict(self.billed),
        }


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
