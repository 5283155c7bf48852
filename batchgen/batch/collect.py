"""A finished batch's output and error files → images on disk and one log row per line.

Both files are streamed line by line (``BatchApi.stream_lines``): memory holds one 1 MB chunk
and the line being decoded, whatever the file's size. Each line is logged as it is read — an
ok row after its images were saved atomically (``images.save_images``), an error row classified
by ``classify_http`` — so a crash mid-download loses at most the writer's last second, and the
next collection of the same batch skips every custom_id that already has a row for this batch
(or an ok row from anywhere): no duplicate rows, no image paid twice.

A line without a response (``batch_expired``, ``batch_cancelled``) and a job of the part that
got no line at all (a batch that failed validation, the unfinished part of a cancelled one)
get a row of class ``cancelled``: pending, for ``resume`` to send again. An errored line keeps
its class: retryable ones (server, …) are sent again by ``resume``; content policy and bad
requests fail for good, as on the live path.

Fault point: ``batch:collect_line`` (a line's images saved, its row not yet appended).
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import orjson

from batchgen import faultpoints
from batchgen.batch.answer import LineError, has_images, line_images
from batchgen.batch.api import error_fields
from batchgen.batch.context import BatchContext
from batchgen.batch.lines import MAX_LINE_ENV, LongLine, http_status, text
from batchgen.batch.state import Part
from batchgen.batch.submit import base_row
from batchgen.errors import AttemptError, ErrorClass, classify_http
from batchgen.images import save_images
from batchgen.jobs.model import Job
from batchgen.money import cost_of_attempt
from batchgen.provider.base import Usage
from batchgen.provider.usage import parse_usage
from batchgen.runlog.row import Row
from batchgen.runlog.schema import STATUS_ERROR, STATUS_OK

_INLINE_SAVE_BYTES = 512 * 1024
_NOT_RUN = {"batch_expired", "batch_cancelled"}
_GONE = frozenset({404, 410})  # a file the provider no longer has


class _Strays:
    """Lines whose custom_id is none of the part's jobs: how many, and the first one's."""

    __slots__ = ("count", "first", "ids")

    def __init__(self, ids: set[str]) -> None:
        self.ids = ids
        self.count = 0
        self.first: object = None

    def add(self, cid: object) -> None:
        if self.count == 0:
            self.first = cid if not isinstance(cid, str) else cid[:80]
        self.count += 1


async def collect_part(ctx: BatchContext, part: Part) -> None:
    """Log every line of the part's files, then close the part (``collected``)."""
    ids = set(ctx.state.job_ids(part))
    jobs = ctx.jobs_of(ids - ctx.done_ids)
    seen = ctx.logged.setdefault(str(part.batch_id), set())
    billed = [0.0]
    strays = _Strays(ids)
    lost: str | None = None
    for file_id, what in ((part.output_file_id, "output"), (part.error_file_id, "error")):
        if file_id:
            try:
                async for raw in ctx.api.stream_lines(file_id):
                    await _one_line(ctx, part, raw, jobs, seen, billed, strays)
            except AttemptError as exc:
                if exc.http_status not in _GONE:
                    raise
                ctx.say(
                    f"{part.label()}: its {what} file {file_id} answers HTTP "
                    f"{exc.http_status}: its lines cannot be read",
                    warning=True,
                )
                lost = lost or what
    # jobs the files said nothing about: not run (failed validation, cancelled, expired)
    why = f"batch_{part.status or 'lost'}"
    message = _batch_message(part)
    if lost == "output":
        # the provider ran (and billed) these lines, but their answers cannot be read: sent
        # again, counted as possibly billed twice (the code does not start with batch_)
        why = "output_file_lost"
        message = (
            f"the batch's output file cannot be read (it answers 404): the provider counted "
            f"{part.counts.get('completed', 0)} line(s) of it completed and may have billed "
            "them; this job is sent again"
        )
        unread = len(ids - seen - ctx.done_ids)
        if unread:
            ctx.say(
                f"{part.label()}: {unread} job(s) with no readable answer are left "
                "pending (resume sends them again); they may have been billed once "
                "already",
                warning=True,
            )
    if strays.count:
        # run (and likely billed) under an id that is none of ours: a provider or proxy that
        # rewrote the custom_ids; resume would send (and pay for) these jobs again
        ctx.say(
            f"{part.label()}: {strays.count} line(s) of its output name no job of it "
            f"(custom_id {strays.first!r}, …): not saved. The provider may have run and "
            "billed them; check that it returns each custom_id as sent before resuming",
            warning=True,
        )
        if ids - seen - ctx.done_ids:
            message = (
                f"no output line names this job, and {strays.count} line(s) name custom_ids "
                f"that are none of this batch's (e.g. {strays.first!r}): the provider may "
                "have run it under another id; pending"
            )
    for job_id in sorted(ids - seen - ctx.done_ids):
        job = jobs.get(job_id)
        if job is not None:
            _error_row(ctx, part, job, ErrorClass.CANCELLED, None, why, message, None, None)
            seen.add(job_id)
    # every row of this part reaches a part file before the part is marked collected
    await anyio.to_thread.run_sync(ctx.sink.flush)
    part.collected = True
    ctx.state.record(part)
    hold = ctx.holds.pop(part.part, None)
    if hold is not None:
        hold.settle(billed[0])
    if ctx.budget is not None and ctx.budget.monthly is not None:
        # the part's rows are in the spend ledger now (the sink writes them as they are
        # logged under a monthly budget): 50 / 80 / 100 % as on the live path, each once
        ctx.budget.monthly.check_alerts()


def _batch_message(part: Part) -> str:
    if part.errors:
        first = part.errors[0] if isinstance(part.errors[0], dict) else {}
        line = f" (input line {first.get('line')})" if first.get("line") else ""
        return f"the batch {part.status}: {first.get('message') or first.get('code')}{line}"
    return f"not run: the batch ended {part.status or 'without an answer'}"


async def _one_line(
    ctx: BatchContext,
    part: Part,
    raw: bytes | bytearray | LongLine,
    jobs: dict[str, Job],
    seen: set[str],
    billed: list[float],
    strays: _Strays,
) -> None:
    if isinstance(raw, LongLine):
        _long_line(ctx, part, raw, jobs, seen)
        return
    try:
        doc = _loads(raw)
    except ValueError:
        ctx.say(f"{part.label()}: skipped a line that is not JSON ({len(raw)} bytes)", warning=True)
        return
    finally:
        if isinstance(raw, bytearray):
            raw.clear()  # the line's bytes are parsed: free them before its images are decoded
    cid = doc.get("custom_id") if isinstance(doc, dict) else None
    if not isinstance(cid, str) or cid not in strays.ids:
        strays.add(cid)
        return
    if cid in ctx.done_ids:
        return  # done already (an earlier collection of this batch, or elsewhere)
    job = jobs.get(cid)
    if job is None:
        return  # not one of this part's open jobs
    response = doc.get("response")
    error = doc.get("error")
    if not isinstance(response, dict):
        if cid in seen:
            return  # logged already; only an ok line may follow one
        seen.add(cid)
        err = error if isinstance(error, dict) else {}
        code = text(err.get("code"), 200)
        message = str(err.get("message") or "") if err else "no response"
        klass = ErrorClass.CANCELLED if code in _NOT_RUN or code is None else ErrorClass.SERVER
        _error_row(ctx, part, job, klass, None, code or "batch_not_run", message, None, None)
        return
    raw_status = response.get("status_code")
    status = http_status(raw_status)
    request_id = text(response.get("request_id"), 200)
    body = response.get("body")
    # an answer with images is saved whatever its status says (null, "abc"): it was billed
    if status == 200 or (status is None and has_images(body)):
        await _ok_line(ctx, part, job, body, status, request_id, seen, billed)
        return
    if cid in seen:
        return
    seen.add(cid)
    if status is None:
        shown = orjson.dumps(raw_status)[:40].decode("utf-8", "replace")
        message = f"the line's status_code {shown} is not an HTTP status, and it has no images"
        _error_row(
            ctx, part, job, ErrorClass.INVALID_RESPONSE, None, None, message, request_id, None
        )
        return
    code, message = error_fields(body if isinstance(body, dict) else None)
    klass = classify_http(status, code)
    _error_row(ctx, part, job, klass, status, code, message, request_id, None)


async def _ok_line(
    ctx: BatchContext,
    part: Part,
    job: Job,
    body: Any,
    status: int | None,
    request_id: str | None,
    seen: set[str],
    billed: list[float],
) -> None:
    # a usage the provider got wrong is priced from the table (provider/usage.py)
    usage = parse_usage(body.get("usage"))[0] if isinstance(body, dict) else None
    try:
        images, note = line_images(body, job.n)
    except LineError as exc:
        if job.id in seen:
            return
        seen.add(job.id)
        cost = _cost(ctx, job, usage, 0)
        billed[0] += cost or 0.0
        _error_row(
            ctx,
            part,
            job,
            ErrorClass.INVALID_RESPONSE,
            status,
            None,
            str(exc),
            request_id,
            usage,
            cost,
        )
        return
    seen.add(job.id)
    if sum(len(i.data) for i in images) <= _INLINE_SAVE_BYTES:
        paths, nbytes = save_images(ctx.rundir.images_dir, job.id, images)
    else:
        paths, nbytes = await anyio.to_thread.run_sync(
            save_images, ctx.rundir.images_dir, job.id, images
        )
    faultpoints.hit("batch:collect_line")
    cost = _cost(ctx, job, usage, len(images))
    billed[0] += cost or 0.0
    row = _row(ctx, part, job, request_id)
    row.update(
        {
            "status": STATUS_OK,
            "final": True,
            "http_status": status,
            "image_paths": paths,
            "image_count": len(paths),
            "image_bytes": nbytes,
            "revised_prompt": next((i.revised_prompt for i in images if i.revised_prompt), None),
            "error_message": note,
            "cost_usd": cost,
            "cost_source": "usage"
            if usage is not None and cost is not None
            else ("price-table" if cost is not None else "unknown"),
        }
    )
    _usage_into(row, usage)
    ctx.sink.append(row)
    ctx.done_ids.add(job.id)
    ctx.tally.ok(job, len(paths), cost or 0.0)


def _long_line(
    ctx: BatchContext, part: Part, line: LongLine, jobs: dict[str, Job], seen: set[str]
) -> None:
    cid = line.custom_id
    job = jobs.get(cid) if cid is not None and cid not in ctx.done_ids else None
    mb = f"{line.size / 1e6:,.1f} MB"
    if job is None:
        ctx.say(
            f"{part.label()}: skipped a {mb} line over the line cap "
            f"({MAX_LINE_ENV}={line.cap}) that names none of its open jobs",
            warning=True,
        )
        return
    if job.id in seen:
        return
    seen.add(job.id)
    message = (
        f"the batch output line is {mb}, over the cap of {line.cap:,} bytes: not read. The "
        f"provider may have billed it; raise {MAX_LINE_ENV} and collect a copy of the file "
        "to keep it"
    )
    _error_row(
        ctx, part, job, ErrorClass.INVALID_RESPONSE, None, "line_too_long", message, None, None
    )


def _loads(raw: bytes | bytearray) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        if len(raw) > 1 << 20:
            raise
        # orjson refuses integers past 64 bits (a status_code of 10**30): the standard
        # library reads them (small lines only: a big line is images, parsed by orjson)
        return json.loads(raw)


def _cost(ctx: BatchContext, job: Job, usage: Usage | None, images: int) -> float | None:
    return cost_of_attempt(ctx.prices, job, usage, images)[0]


def _row(ctx: BatchContext, part: Part, job: Job, request_id: str | None) -> Row:
    row = base_row(ctx, job)
    row.update(
        {
            "queued_at": part.created_local,
            "finished_at": time.time(),
            "request_id": request_id,
            "provider_batch_id": part.batch_id,
        }
    )
    return row


def _error_row(
    ctx: BatchContext,
    part: Part,
    job: Job,
    klass: ErrorClass,
    status: int | None,
    code: str | None,
    message: str,
    request_id: str | None,
    usage: Usage | None,
    cost: float | None = 0.0,
) -> None:
    row = _row(ctx, part, job, request_id)
    row.update(
        {
            "status": STATUS_ERROR,
            "final": True,
            "error_class": klass.value,
            "http_status": status,
            "error_code": code,
            "error_message": ctx.api.redact(message)[:2000],
            "cost_usd": cost,
            "cost_source": "usage" if usage is not None else "none",
        }
    )
    _usage_into(row, usage)
    ctx.sink.append(row)
    ctx.tally.error(job, klass, True, cost or 0.0)


def _usage_into(row: Row, usage: Usage | None) -> None:
    if usage is not None:
        row.update(
            {
                "input_tokens": usage.input_tokens,
                "input_text_tokens": usage.input_text_tokens,
                "input_image_tokens": usage.input_image_tokens,
                "output_tokens": usage.output_tokens,
            }
        )
