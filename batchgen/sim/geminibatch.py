"""The simulator's Gemini Batch API and Files API (Google's v1beta shapes, key in
``x-goog-api-key``), beside the Gemini generateContent route:
POST /v1beta/models/{model}:batchGenerateContent   inline requests or a file_name
GET  /v1beta/batches/{id}     the long-running Operation (metadata.state, batchStats; once
                              done, response.inlinedResponses or response.responsesFile)
POST /v1beta/batches/{id}:cancel                  GET /v1beta/batches (operations)
POST /upload/v1beta/files     resumable: ``start`` answers x-goog-upload-url, ``upload,
                              finalize`` takes the bytes          GET /v1beta/files
GET  /download/v1beta/files/{id}:download?alt=media   a responses file, streamed

A batch runs on the same compressed clock as the OpenAI batches (``batch_seconds``, the
state machine of sim/batchstate.py) and the same ``batch_faults`` (``fail=K``, ``expire=K``
count every batch created, of either API); its counters (``submitted``, ``billed``, batches
created, cancels) are the OpenAI batches' (``GET /_sim/stats`` → ``batch``). A line's
prompt directives decide its fault: content_policy → a blocked answer (``IMAGE_SAFETY``),
any other → an error Status (INTERNAL). Lines an expired or cancelled batch did not run get
no answer.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, Protocol

from aiohttp import web

from batchgen.sim.batchstate import TERMINAL, Batch, SimFile, send_file
from batchgen.sim.front import SimFront
from batchgen.sim.geminilines import answer_lines, read_lines
from batchgen.sim.models import ApiError

_STATE = {
    "validating": "BATCH_STATE_PENDING",
    "in_progress": "BATCH_STATE_RUNNING",
    "finalizing": "BATCH_STATE_RUNNING",
    "cancelling": "BATCH_STATE_RUNNING",
    "completed": "BATCH_STATE_SUCCEEDED",
    "failed": "BATCH_STATE_FAILED",
    "cancelled": "BATCH_STATE_CANCELLED",
    "expired": "BATCH_STATE_EXPIRED",
}
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat().replace("+00:00", "Z")


def _error(status: int, grpc: str, message: str) -> web.Response:
    body = {"error": {"code": status, "message": message, "status": grpc}}
    return web.json_response(body, status=status)


class _Owner(Protocol):
    """The OpenAI batches (sim/batches.py, which imports this module): shared counters."""

    server: SimFront
    batches: Any
    submitted: Counter[str]
    billed: Counter[str]
    uploads: int
    cancels: int

    def _new_id(self, kind: str) -> str: ...
    def _now(self) -> float: ...


class GeminiBatches:
    """Gemini batches of one simulator; shares the OpenAI batches' counters and numbering."""

    def __init__(self, owner: _Owner) -> None:
        self.owner = owner
        self.server = owner.server
        self.batches: dict[str, Batch] = {}
        self.inline: dict[str, bool] = {}  # batch id -> created from inline requests
        self.results: dict[str, list[bytes]] = {}  # batch id -> its answers (once settled)
        self.files: dict[str, SimFile] = {}
        self.uploads: dict[str, str] = {}  # upload id -> display name

    def register(self, app: web.Application) -> None:
        g = self._guard
        app.router.add_post("/v1beta/models/{model}:batchGenerateContent", g(self.create))
        app.router.add_get("/v1beta/batches", g(self.list_batches))
        app.router.add_get("/v1beta/batches/{bid}", g(self.get))
        app.router.add_post("/v1beta/batches/{bid}", g(self.cancel))  # {id}:cancel
        app.router.add_post("/upload/v1beta/files", g(self.upload))
        app.router.add_get("/v1beta/files", g(self.list_files))
        app.router.add_get("/download/v1beta/files/{fid}", g(self.download))  # {id}:download

    def _guard(self, handler: Any) -> Any:
        async def guarded(request: web.Request) -> web.StreamResponse:
            key = request.headers.get("x-goog-api-key", "").strip()
            expected = self.server.config.api_key
            if not key or (expected is not None and key != expected):
                return _error(
                    400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."
                )
            try:
                result: web.StreamResponse = await handler(request)
                return result
            except ApiError as err:
                return _error(err.status, "INVALID_ARGUMENT", err.message)

        return guarded

    def number(self) -> int:
        return len(self.owner.batches) + len(self.batches) + 1

    # -- files -----------------------------------------------------------------------------
    async def upload(self, request: web.Request) -> web.Response:
        command = request.headers.get("X-Goog-Upload-Command", "")
        if command == "start":
            doc = await request.json()
            name = str(((doc or {}).get("file") or {}).get("display_name") or "upload.jsonl")
            upload_id = self.owner._new_id("upload")
            self.uploads[upload_id] = name
            url = f"{request.scheme}://{request.host}/upload/v1beta/files?upload_id={upload_id}"
            return web.json_response(
                {}, headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"}
            )
        if "finalize" not in command:
            raise ApiError(400, "X-Goog-Upload-Command must be start or 'upload, finalize'.")
        name = self.uploads.pop(request.query.get("upload_id", ""), "")
        if not name:
            raise ApiError(404, "No such upload session.")
        data = await request.read()
        f = SimFile(
            f"files/{self.owner._new_id('file')}", name, "batch", int(time.time()), data=data
        )
        self.files[f.id] = f
        self.owner.uploads += 1
        return web.json_response({"file": self._file_json(f)})

    def _file_json(self, f: SimFile) -> dict[str, Any]:
        return {
            "name": f.id,
            "displayName": f.filename,
            "mimeType": "application/jsonl",
            "sizeBytes": str(len(f.data or b"")),
            "createTime": _iso(f.created_at),
            "state": "ACTIVE",
        }

    async def list_files(self, request: web.Request) -> web.Response:
        if self.server.config.batch_faults.get("no_file_list"):
            return _error(405, "UNIMPLEMENTED", "Method Not Allowed")
        files = [self._file_json(f) for f in reversed(self.files.values()) if f.data is not None]
        return web.json_response({"files": files})

    async def download(self, request: web.Request) -> web.StreamResponse:
        fid = "files/" + request.match_info["fid"].removesuffix(":download")
        for b in self.batches.values():
            await self._settle(b)
        f = self.files.get(fid)
        if f is None or f.lines is None:
            return _error(404, "NOT_FOUND", f"File {fid} not found.")
        return await send_file(request, f)

    # -- batches ---------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        try:
            doc = await request.json()
            batch = doc["batch"]
            name = str(batch["display_name"])
            config = batch["input_config"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(
                400, "Invalid JSON payload: expected batch.display_name and batch.input_config."
            ) from None
        model = request.match_info["model"]
        if isinstance(config.get("requests"), dict):
            items = config["requests"].get("requests") or []
            inline = True
        elif isinstance(config.get("file_name"), str):
            f = self.files.get(config["file_name"])
            if f is None or f.data is None:
                raise ApiError(400, f"File {config['file_name']} not found.")
            items = [json.loads(raw) for raw in f.data.splitlines() if raw.strip()]
            inline = False
        else:
            raise ApiError(400, "input_config needs requests or file_name.")
        lines, errors = read_lines(self.server, items, model, inline)
        number = self.number()
        faults = self.server.config.batch_faults
        if number == faults.get("fail") and not errors:
            errors = [{"code": "invalid_request", "message": "Simulated validation failure."}]
        b = Batch(
            id=f"batches/{self.owner._new_id('batch')}",
            number=number,
            input_file_id=str(config.get("file_name") or "inline"),
            endpoint="gemini",
            metadata={"displayName": name, "model": model},
            created_at=int(time.time()),
            t0=self.owner._now(),
            seconds=float(self.server.config.batch_seconds),
            lines=lines,
            errors=errors,
            expire=faults.get("expire") == number,
        )
        self.batches[b.id] = b
        self.inline[b.id] = inline
        for line in lines:
            self.owner.submitted[line.custom_id] += 1
        return web.json_response(await self._op(b))

    async def _settle(self, b: Batch) -> None:
        """Once terminal: the lines that ran are answered (and billed), once."""
        if b.settled:
            return
        status, done = b.state(self.owner._now())
        if status not in TERMINAL:
            return
        b.settled = True
        if status == "failed":
            return
        answers = await answer_lines(
            self.server, b, b.lines[:done], billed=self.owner.billed, inline=self.inline[b.id]
        )
        if self.inline[b.id]:
            self.results[b.id] = answers
            return

        async def lines() -> AsyncIterator[bytes]:
            for answer in answers:
                yield answer + b"\n"

        f = SimFile(
            f"files/{self.owner._new_id('file')}",
            f"{b.id}-responses.jsonl",
            "batch_output",
            int(time.time()),
            lines=lines,
        )
        self.files[f.id] = f
        b.output_file_id = f.id

    async def _op(self, b: Batch) -> dict[str, Any]:
        await self._settle(b)
        status, done = b.state(self.owner._now())
        ok = sum(1 for line in b.lines[:done] if line.fault is None)
        about = b.metadata or {}
        meta = {
            "@type": _TYPE + "GenerateContentBatch",
            "model": f"models/{about.get('model')}",
            "displayName": about.get("displayName"),
            "createTime": _iso(b.created_at),
            "updateTime": _iso(time.time()),
            "state": _STATE[status],
            "batchStats": {
                "requestCount": str(len(b.lines)),
                "successfulRequestCount": str(ok),
                "failedRequestCount": str(done - ok),
                "pendingRequestCount": str(len(b.lines) - done),
            },
        }
        op: dict[str, Any] = {"name": b.id, "metadata": meta, "done": status in TERMINAL}
        if status == "failed":
            first = b.errors[0]["message"] if b.errors else "failed"
            op["error"] = {"code": 3, "message": first}
        elif status in TERMINAL:
            if self.inline[b.id]:
                items = [json.loads(a) for a in self.results.get(b.id, [])]
                output: dict[str, Any] = {"inlinedResponses": {"inlinedResponses": items}}
            else:
                output = {"responsesFile": b.output_file_id}
            op["response"] = {"@type": _TYPE + "GenerateContentBatchOutput", **output}
        return op

    def _batch(self, request: web.Request) -> Batch:
        bid = "batches/" + request.match_info["bid"].removesuffix(":cancel")
        found = self.batches.get(bid)
        if found is None:
            raise ApiError(404, f"Batch {bid} not found.")
        return found

    async def get(self, request: web.Request) -> web.Response:
        return web.json_response(await self._op(self._batch(request)))

    async def cancel(self, request: web.Request) -> web.Response:
        if not request.match_info["bid"].endswith(":cancel"):
            return _error(404, "NOT_FOUND", "Not found.")
        b = self._batch(request)
        status, _ = b.state(self.owner._now())
        if status in TERMINAL or status == "cancelling":
            return _error(400, "FAILED_PRECONDITION", f"Batch is {_STATE[status]}.")
        b.cancel_t = self.owner._now()
        self.owner.cancels += 1
        return web.json_response({})

    async def list_batches(self, request: web.Request) -> web.Response:
        if self.server.config.batch_faults.get("no_batch_list"):
            return _error(405, "UNIMPLEMENTED", "Method Not Allowed")
        ops = [await self._op(b) for b in reversed(self.batches.values())]
        return web.json_response({"operations": ops})

    def statuses(self) -> list[str]:
        now = self.owner._now()
        return [b.state(now)[0] for b in self.batches.values()]
