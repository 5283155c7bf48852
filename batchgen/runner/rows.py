"""The log row of one attempt, as the pool writes it (the columns are batchgen.runlog.schema's;
the writer checks each row against them when it is appended)."""

from __future__ import annotations

from batchgen.provider.base import Usage
from batchgen.runlog.row import Row
from batchgen.runner.control import RowContext
from batchgen.runner.tries import Try


def attempt_row(ctx: RowContext, tried: Try, finished_at: float, latency: float | None) -> Row:
    """The row of one attempt: what every row of the session shares, the job's fields and the
    attempt's timings; the caller adds the outcome (status, error or images, cost)."""
    job = tried.job
    body = job.body
    fields = job.log_fields()
    return {
        "run_id": ctx.run_id,
        "session": ctx.session,
        "job_id": job.id,
        "job_line": job.line,
        "fingerprint": job.fingerprint,
        "attempt": tried.number,
        "provider": ctx.provider,
        "model": body.get("model"),
        "prompt": body.get("prompt"),
        "size": body.get("size"),
        "quality": body.get("quality"),
        "n": job.n,
        "params": job.params_json(),
        "queued_at": tried.queued_at,
        "started_at": tried.started,
        "finished_at": finished_at,
        "latency_s": latency,
        "wait_s": tried.wait_s,
        "input_hashes": fields["input_hashes"],
        "vars": fields["vars"],
    }


def routed(row: Row, endpoint: str, wait_s: float) -> None:
    """Several endpoints: the row names the endpoint, and the wait for its limiter moves
    from the latency to wait_s."""
    row["endpoint"] = endpoint
    if wait_s:
        row["wait_s"] = (row.get("wait_s") or 0.0) + wait_s
        latency = row.get("latency_s")
        if latency is not None:
            row["latency_s"] = max(0.0, latency - wait_s)


def usage_into(row: Row, usage: Usage | None) -> None:
    if usage is not None:
        row.update(
            {
                "input_tokens": usage.input_tokens,
                "input_text_tokens": usage.input_text_tokens,
                "input_image_tokens": usage.input_image_tokens,
                "output_tokens": usage.output_tokens,
            }
        )
