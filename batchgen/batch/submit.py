"""Jobs → input files within the provider's limits → uploads → one batch per file.

Order of each part (see state.py): ids and input on disk → intent recorded → upload → file id
recorded → batch created → batch id recorded. ``--max-cost`` and the monthly budgets (a hold in
the spend ledger, as on the live path) reserve the worst case of every line before the line
joins a file; a job that does not fit ends the file there, and the rest is logged as skipped
(class budget): pending, as on the live path. A file's worst case is then held as one sum
until its batch is collected: its holds in the ledger belong to the part (``hold_owner``), so
they outlive a --detach and the later ``collect`` settles them.

Fault points (``BATCHGEN_CRASH_AT``): batch:after_intent, batch:after_upload (uploaded, id not
recorded), batch:after_create (created, id not recorded).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import anyio
import orjson

from batchgen import faultpoints
from batchgen.batch.context import ENDPOINT, BatchContext
from batchgen.batch.lines import batch_errors, count, text
from batchgen.batch.state import Part
from batchgen.errors import AttemptError, ErrorClass
from batchgen.jobs.model import Job
from batchgen.money import Reservation
from batchgen.runlog.row import Row
from batchgen.runlog.schema import STATUS_ERROR, STATUS_SKIPPED
from batchgen.runner.recovery import IN_FLIGHT_AT_CRASH


def request_line(job: Job) -> bytes:
    line = {"custom_id": job.id, "method": "POST", "url": ENDPOINT, "body": job.body}
    return orjson.dumps(line) + b"\n"


class _Cut:
    """Lines of the part being built; ``full`` once adding the next would pass a limit."""

    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.ids: list[str] = []
        self.lines: list[bytes] = []
        self.size = 0
        self.reservations: list[Reservation] = []

    def fits(self, line: bytes) -> bool:
        return len(self.ids) < self.max_requests and self.size + len(line) <= self.max_bytes

    def add(self, job: Job, line: bytes, reservation: Reservation | None) -> None:
        self.ids.append(job.id)
        self.lines.append(line)
        self.size += len(line)
        if reservation is not None:
            self.reservations.append(reservation)


async def submit_jobs(ctx: BatchContext, jobs: Iterable[Job]) -> int:
    """Split ``jobs`` into parts and submit each; returns the jobs submitted. Stops early
    (the rest unsent, no rows) when the session is stopping."""
    opts = ctx.options
    cut = _Cut(opts.max_requests, opts.max_bytes)
    submitted = 0
    over_budget = False
    for job in jobs:
        if ctx.control.stopping:
            break
        if over_budget:
            _skip(ctx, job, ErrorClass.BUDGET)
            continue
        line = request_line(job)
        if len(line) > opts.max_bytes:
            msg = f"job {job.id}: its request line is {len(line)} bytes, over --batch-max-bytes"
            raise AttemptError(ErrorClass.BAD_REQUEST, msg)
        if cut.ids and not cut.fits(line):
            submitted += await _submit_cut(ctx, cut)
            cut = _Cut(opts.max_requests, opts.max_bytes)
        reservation = None
        if ctx.budget is not None and ctx.budget.limited:
            reservation = ctx.budget.reserve(job)
            if reservation is None:
                over_budget = True
                _skip(ctx, job, ErrorClass.BUDGET)
                continue
        cut.add(job, line, reservation)
    if cut.ids and not ctx.control.stopping:
        submitted += await _submit_cut(ctx, cut)
    elif cut.reservations:
        for r in cut.reservations:
            r.release()
    if over_budget and ctx.budget is not None:
        ctx.control.stop(ErrorClass.BUDGET, ctx.budget.exhausted_message(str(ctx.rundir.path)))
    return submitted


async def _submit_cut(ctx: BatchContext, cut: _Cut) -> int:
    state = ctx.state
    number = state.next_part()
    size = state.write_part_files(number, cut.ids, iter(cut.lines))
    held = sum(r.amount_usd for r in cut.reservations)
    part = Part(
        part=number,
        jobs=len(cut.ids),
        bytes=size,
        session=ctx.session,
        filename=state.filename(number),
        reserved_usd=round(held, 9),
    )
    state.record(part)
    faultpoints.hit("batch:after_intent")
    if ctx.budget is not None and cut.reservations:
        # the lines' reservations (and their holds in the spend ledger) become one, held
        # until the batch is collected, by this process or a later one (batchgen collect)
        owner = state.hold_owner(number)
        ctx.holds[number] = ctx.budget.combine(cut.reservations, f"part-{number}", owner)
    cut.lines.clear()
    await submit_part(ctx, part, recovering=False)
    return part.jobs


async def submit_part(ctx: BatchContext, part: Part, *, recovering: bool) -> None:
    """Upload the part's file and create its batch, each only if not done (or found) yet."""
    state, api = ctx.state, ctx.api
    if part.file_id is None:
        found = await _find_file(ctx, part) if recovering else None
        if found is None:
            answer = await api.upload(state.input_path(part.part), part.filename)
            found = str(answer["id"])
            faultpoints.hit("batch:after_upload")
        part.file_id = found
        state.record(part)
    if part.batch_id is None:
        batch = await _find_batch(ctx, part) if recovering else None
        if batch is None:
            batch = await _create(ctx, part)
            faultpoints.hit("batch:after_create")
        _update(part, batch)
        state.record(part)
        state.drop_input(part)
        ctx.say(f"submitted {part.label()}: {part.jobs} request(s), {part.bytes / 1e6:.1f} MB")


async def _create(ctx: BatchContext, part: Part) -> dict[str, Any]:
    """Create the batch; after a lost answer, look for it before trying again."""
    for attempt in range(1, 6):
        try:
            return await ctx.api.create_batch(
                str(part.file_id), ENDPOINT, ctx.state.metadata(part.part)
            )
        except AttemptError as exc:
            if not exc.error_class.retryable or attempt == 5:
                raise
            await anyio.sleep(exc.retry_after_s or 0.5 * 2**attempt)
            found = await _find_batch(ctx, part)
            if found is not None:
                return found
    raise AssertionError("unreachable")


# answers of a provider that has no such listing route
_NO_LISTING = frozenset({404, 405, 501})


async def _find_file(ctx: BatchContext, part: Part) -> str | None:
    try:
        async for item in ctx.api.list_files():
            if not isinstance(item, dict):
                continue
            if item.get("filename") == part.filename and item.get("purpose") == "batch":
                return str(item["id"])
    except AttemptError as exc:
        if exc.http_status not in _NO_LISTING:
            raise
        # an upload costs nothing: send the file again (a copy may be left at the provider)
        ctx.say(
            f"part {part.part}: the provider cannot list its files (HTTP "
            f"{exc.http_status}), so an upload cut short by the crash cannot be found; "
            "uploading the input again (uploads are free; an earlier copy may be left "
            "among your files)",
            warning=True,
        )
    return None


async def _find_batch(ctx: BatchContext, part: Part) -> dict[str, Any] | None:
    want = ctx.state.metadata(part.part)
    since = part.created_local - 3600  # clocks differ; a margin, the metadata decides
    try:
        async for item in ctx.api.list_batches(newer_than=since):
            meta = item.get("metadata") if isinstance(item, dict) else None
            if isinstance(meta, dict) and all(meta.get(k) == v for k, v in want.items()):
                return item
    except AttemptError as exc:
        if exc.http_status not in _NO_LISTING:
            raise
        _unknown_batch(ctx, part, exc.http_status)
    return None


def _unknown_batch(ctx: BatchContext, part: Part, status: int | None) -> None:
    """The crash may have left a batch of this part at the provider that cannot be found:
    say so, and log each job as possibly billed (``in_flight_at_crash``, attempt 0) so the
    report counts it as possibly billed twice once it is sent again."""
    ids = ctx.state.job_ids(part)
    ctx.say(
        f"part {part.part}: the provider cannot list its batches (HTTP {status}), "
        "so a batch created just before the crash cannot be found; submitting again. If "
        f"that batch exists, its {len(ids)} request(s) are billed twice (the report counts "
        "them as possibly billed twice)",
        warning=True,
    )
    jobs = ctx.jobs_of(set(ids) - ctx.done_ids)
    for job_id in ids:
        job = jobs.get(job_id)
        if job is None:
            continue
        row = base_row(ctx, job, attempt=0)
        row.update(
            {
                "status": STATUS_ERROR,
                "final": False,
                "error_class": ErrorClass.CANCELLED.value,
                "error_code": IN_FLIGHT_AT_CRASH,
                "cost_usd": None,
                "cost_source": "unknown",
                "error_message": f"part {part.part}: a batch may have been created before a crash; "
                "the provider cannot list batches to find it, so it was submitted again",
            }
        )
        ctx.sink.append(row)


async def reconcile(ctx: BatchContext) -> None:
    """Parts a crash left half-submitted: adopt what the provider has, submit the rest."""
    for part in ctx.state.open_parts():
        if part.batch_id is None and not part.terminal:
            await submit_part(ctx, part, recovering=True)


def _update(part: Part, batch: dict[str, Any]) -> bool:
    """Copy the provider's view of the batch into ``part``; True when something changed."""
    if not isinstance(batch, dict):
        return False  # not a Batch object: nothing to learn from it (polled again)
    before = (part.status, part.counts, part.output_file_id, part.error_file_id)
    part.batch_id = str(batch.get("id") or part.batch_id)
    part.status = text(batch.get("status"), 40) or part.status
    counts = batch.get("request_counts")
    counts = counts if isinstance(counts, dict) else {}
    part.counts = {k: count(counts.get(k)) for k in ("total", "completed", "failed")}
    part.output_file_id = text(batch.get("output_file_id"), 200) or part.output_file_id
    part.error_file_id = text(batch.get("error_file_id"), 200) or part.error_file_id
    errors = batch_errors(batch.get("errors"))
    if errors:
        part.errors = errors
    return before != (part.status, part.counts, part.output_file_id, part.error_file_id)


update_part = _update


def _skip(ctx: BatchContext, job: Job, reason: ErrorClass, message: str = "") -> None:
    row = base_row(ctx, job, attempt=0)
    row.update(
        {
            "status": STATUS_SKIPPED,
            "final": True,
            "error_class": reason.value,
            "error_message": message or (ctx.control.message or reason.diagnosis),
            "cost_usd": 0.0,
            "cost_source": "none",
        }
    )
    ctx.sink.append(row)
    ctx.tally.skipped(job, reason)


def base_row(ctx: BatchContext, job: Job, *, attempt: int = 1) -> Row:
    body = job.body
    return {
        "run_id": ctx.run_id,
        "session": ctx.session,
        "job_id": job.id,
        "job_line": job.line,
        "fingerprint": job.fingerprint,
        "attempt": attempt,
        "provider": ctx.provider,
        "model": body.get("model"),
        "prompt": body.get("prompt"),
        "size": body.get("size"),
        "quality": body.get("quality"),
        "n": job.n,
        "params": job.params_json(),
        "finished_at": time.time(),
    }
