"""The errors batchgen raises, and the taxonomy of a failed attempt.

What a caller of the library (``batchgen.run``, ``batchgen.resume``) can catch:

    BatchgenError (Exception)        anything batchgen raises on purpose
     ├── UsageError                  bad arguments or environment: nothing was sent (CLI exit 2)
     │    ├── ConfigError            a setting's value is wrong (rpm 0, an unknown provider)
     │    ├── JobFileError           the job file cannot be read, or has problems (``.lines``)
     │    ├── PricesError            the price table is missing or malformed
     │    └── RunDirError            the run directory is missing, damaged, or already a run
     │         └── RunLocked         another live process holds the run's lock
     ├── RunStopped                  the run stopped with jobs pending; ``.reason`` is the
     │                               ErrorClass (auth, quota, budget, disk, rate_limit, cancelled)
     └── RunLogError (also OSError)  rows of the log could not be written (disk full)

``RunResult.raise_for_stop()`` raises RunStopped for a session that stopped early.

The error taxonomy of one attempt: one definition, used by the retry policy, the pool and the
analyzers.

Every failure of an attempt becomes an :class:`AttemptError` carrying an :class:`ErrorClass`.
What the pool does about it (stop the run, fail the job, retry) is the class's :class:`Action`;
what the report tells the user is its diagnosis and remedy.

    AttemptError (Exception)
     ├── class auth / quota            → Action.STOP_RUN   (remaining jobs stay pending)
     ├── class content_policy          → Action.FAIL_JOB   (never retried)
     ├── class bad_request             → Action.FAIL_JOB
     ├── class rate_limit              → Action.RETRY      (honours Retry-After, pauses the pool)
     ├── class server / timeout /
     │   network / invalid_response    → Action.RETRY      (backoff with full jitter)
     │     except a delivered answer the client refused (``final=True``, code
     │     ``answer_refused``)           → Action.FAIL_JOB   (sending it again is a second bill)
     ├── class disk                    → Action.STOP_RUN   (full or read-only: nothing to save to)
     └── class budget / cancelled      → Action.PENDING    (never sent / not finished)

The package: ``taxonomy`` (the classes, their actions and advice, classify_http,
AttemptError: the one definition), ``public`` (the exceptions above) and ``parsing`` (what a
provider's answer says, read safely: Retry-After, reset durations, error-body fields, text
made fit for a terminal). Import from ``batchgen.errors``.
"""

from batchgen.errors.parsing import (
    MAX_FIELD_CHARS,
    error_code,
    parse_reset_duration,
    parse_retry_after,
    printable,
    printable_all,
    provider_text,
)
from batchgen.errors.public import (
    BatchgenError,
    ConfigError,
    RunDirError,
    RunLocked,
    RunStopped,
    UsageError,
)
from batchgen.errors.taxonomy import (
    REFUSED_CODE,
    Action,
    AttemptError,
    ClassInfo,
    ErrorClass,
    classify_http,
    is_disk_error,
    refused,
)
from batchgen.redaction import redact  # the one redaction, re-exported

__all__ = [
    "MAX_FIELD_CHARS",
    "REFUSED_CODE",
    "Action",
    "AttemptError",
    "BatchgenError",
    "ClassInfo",
    "ConfigError",
    "ErrorClass",
    "RunDirError",
    "RunLocked",
    "RunStopped",
    "UsageError",
    "classify_http",
    "error_code",
    "is_disk_error",
    "parse_reset_duration",
    "parse_retry_after",
    "printable",
    "printable_all",
    "provider_text",
    "redact",
    "refused",
]
