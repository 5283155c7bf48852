"""The Parquet log's schema: one row per attempt (and one per job skipped before sending).

This is the user-visible contract of ``RUN_DIR/log/*.parquet``; readers (resume, analyzers,
DuckDB users) rely on these names. Add columns at the end; never rename. A row is typed as
``row.Row`` (keep it in step: tests/test_row_contract.py) and checked against this schema by
``RunLogWriter.append``.

status:
  ok       the attempt returned images that were saved (``image_paths``)
  error    the attempt failed; ``error_class`` says why (see batchgen.errors)
  skipped  the job was taken but never sent: ``error_class`` is budget / cancelled / auth / quota
           (the run stopped), so the job is pending
final:     True on the last row of a job within a session (ok, failed for good, or pending)
provider_batch_id: the Batch API batch (``--via batch``) whose output or error line the row
  logs; the line's ``custom_id`` is the job id. Null for live requests.
cost_source: usage (from the response's usage tokens) / price-table / recovered / unknown / none
           / reused (an earlier run's image, no request: ``reused_from`` names that run)
input_hashes: an edit's inputs, images then mask: "sha256:<hex>" of a local file's content,
           "url:<url>" or "file_id:<id>" for a remote one (null for a generation)
vars:      a spec cell's variables as canonical JSON ({"background":"oak","style":"studio"});
           null for jobs not from a spec. DuckDB: vars->>'style'
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("session", pa.int32()),
        ("job_id", pa.string()),
        ("job_line", pa.int64()),
        ("fingerprint", pa.string()),
        ("attempt", pa.int32()),
        ("status", pa.string()),
        ("final", pa.bool_()),
        ("error_class", pa.string()),
        ("http_status", pa.int32()),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
        ("provider", pa.string()),
        ("model", pa.string()),
        ("prompt", pa.string()),
        ("size", pa.string()),
        ("quality", pa.string()),
        ("n", pa.int32()),
        ("params", pa.string()),
        ("queued_at", TS),
        ("started_at", TS),
        ("finished_at", TS),
        ("latency_s", pa.float64()),
        ("wait_s", pa.float64()),
        ("retry_after_s", pa.float64()),
        ("image_paths", pa.list_(pa.string())),
        ("image_count", pa.int32()),
        ("image_bytes", pa.int64()),
        ("revised_prompt", pa.string()),
        ("input_tokens", pa.int64()),
        ("input_text_tokens", pa.int64()),
        ("input_image_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("cost_source", pa.string()),
        ("request_id", pa.string()),
        # the provider's batch that produced the row (``--via batch``); null on the live path
        ("provider_batch_id", pa.string()),
        # the providers file's endpoint that answered (`run --providers`); null otherwise
        ("endpoint", pa.string()),
        ("input_hashes", pa.list_(pa.string())),
        ("vars", pa.string()),
        # cost_source "reused": the run (directory) whose image the job took instead of a
        # request (`run --reuse`, `run --from-pilot`); null for a request sent
        ("reused_from", pa.string()),
    ]
)

COLUMNS = tuple(SCHEMA.names)

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_SKIPPED = "skipped"
