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
"""

from __future__ import annotations

import email.utils
import enum
import errno
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from batchgen.redaction import redact as redact  # the one redaction, re-exported


class Action(enum.StrEnum):
    STOP_RUN = "stop_run"
    FAIL_JOB = "fail_job"
    RETRY = "retry"
    PENDING = "pending"


class ErrorClass(enum.StrEnum):
    AUTH = "auth"
    QUOTA = "quota"
    RATE_LIMIT = "rate_limit"
    CONTENT_POLICY = "content_policy"
    BAD_REQUEST = "bad_request"
    SERVER = "server"
    TIMEOUT = "timeout"
    NETWORK = "network"
    INVALID_RESPONSE = "invalid_response"
    DISK = "disk"
    BUDGET = "budget"
    CANCELLED = "cancelled"

    @property
    def action(self) -> Action:
        return _INFO[self].action

    @property
    def retryable(self) -> bool:
        return self.action is Action.RETRY

    @property
    def diagnosis(self) -> str:
        return _INFO[self].diagnosis

    @property
    def remedy(self) -> str:
        return _INFO[self].remedy


@dataclass(frozen=True, slots=True)
class ClassInfo:
    action: Action
    diagnosis: str
    remedy: str


_INFO: dict[ErrorClass, ClassInfo] = {
    ErrorClass.AUTH: ClassInfo(
        Action.STOP_RUN,
        "The API key was rejected (401/403): missing, mistyped, revoked, or not allowed "
        "to use this model or project.",
        "Check OPENAI_API_KEY (or --api-key-env) and that the key's project may use the model, "
        "then `batchgen resume RUN_DIR`.",
    ),
    ErrorClass.QUOTA: ClassInfo(
        Action.STOP_RUN,
        "The account is out of credit or hit a spend/usage limit (429 insufficient_quota, 402).",
        "Add credit or raise the project's spend limit, then `batchgen resume RUN_DIR`.",
    ),
    ErrorClass.RATE_LIMIT: ClassInfo(
        Action.RETRY,
        "The provider throttled requests (429): more requests or images per minute than the "
        "account's tier allows.",
        "Lower --rpm/--ipm to the accepted rate, or raise the account's tier.",
    ),
    ErrorClass.CONTENT_POLICY: ClassInfo(
        Action.FAIL_JOB,
        "The prompt was refused by the provider's safety system (moderation_blocked, "
        "content_policy_violation).",
        "Rewrite the listed prompts; retrying the same prompt will be refused again.",
    ),
    ErrorClass.BAD_REQUEST: ClassInfo(
        Action.FAIL_JOB,
        "The request was malformed for this model: unknown model, unsupported size/quality/n, "
        "or a prompt too long (400/404/413/422).",
        "Check the model name and its supported sizes and parameters (`batchgen plan` checks "
        "them), then start from the simplest request.",
    ),
    ErrorClass.SERVER: ClassInfo(
        Action.RETRY,
        "The provider failed on its side (5xx, an HTML error page, overload).",
        "Usually transient: retries handle it; if the share stays high, lower concurrency or "
        "try later.",
    ),
    ErrorClass.TIMEOUT: ClassInfo(
        Action.RETRY,
        "No answer before the client deadline (--timeout).",
        "Raise --timeout above the observed p99 latency, or lower concurrency.",
    ),
    ErrorClass.NETWORK: ClassInfo(
        Action.RETRY,
        "The connection failed: refused, reset, DNS, or dropped mid-response.",
        "Check the base URL, proxy and network; retries cover brief outages.",
    ),
    ErrorClass.INVALID_RESPONSE: ClassInfo(
        Action.RETRY,
        "The provider answered 200 but the body was unusable: bad JSON, no data, bad base64, "
        "bytes that are not an image, or a failed image download.",
        "Often a proxy or aggregator problem; check the base URL speaks the OpenAI images "
        "protocol.",
    ),
    ErrorClass.DISK: ClassInfo(
        Action.STOP_RUN,
        "The run directory's disk is full or read-only (ENOSPC, EDQUOT, EROFS): an answer's "
        "image or the log could not be saved, so the run stopped sending.",
        "Free space on the run directory's file system (or remount it read-write), then "
        "`batchgen resume RUN_DIR`: saved images are adopted, never paid for again.",
    ),
    ErrorClass.BUDGET: ClassInfo(
        Action.PENDING,
        "Not sent: its worst-case cost would have passed --max-cost.",
        "`batchgen resume RUN_DIR --max-cost HIGHER` to finish.",
    ),
    ErrorClass.CANCELLED: ClassInfo(
        Action.PENDING,
        "Not finished: the run was interrupted (Ctrl-C, SIGTERM, a crash, or a stop of the run).",
        "`batchgen resume RUN_DIR` finishes it.",
    ),
}

_QUOTA_CODES = {"insufficient_quota", "credit_balance_exhausted", "billing_hard_limit_reached"}
_QUOTA_SUFFIXES = ("_spend_limit_exceeded", "_usage_limit_exceeded")
_CONTENT_CODES = {"moderation_blocked", "content_policy_violation", "content_filter"}
_AUTH_CODES = {"invalid_api_key", "invalid_authentication", "unauthorized"}


def classify_http(status: int, code: str | None = None, *, is_html: bool = False) -> ErrorClass:
    """Map an HTTP error answer to its class. ``code`` is ``error.code`` from the body.

    Quota exhaustion is also HTTP 429, so the code is checked before the status.
    """
    code = (code or "").lower()
    if code in _AUTH_CODES:
        return ErrorClass.AUTH
    if code in _QUOTA_CODES or code.endswith(_QUOTA_SUFFIXES) or status == 402:
        return ErrorClass.QUOTA
    if code in _CONTENT_CODES:
        return ErrorClass.CONTENT_POLICY
    if status in (401, 403):
        return ErrorClass.AUTH
    if status == 429:
        return ErrorClass.RATE_LIMIT
    if status == 408:
        return ErrorClass.TIMEOUT
    if status >= 500 or is_html:
        return ErrorClass.SERVER
    if status in (400, 404, 405, 409, 413, 415, 422):
        return ErrorClass.BAD_REQUEST
    return ErrorClass.SERVER if status >= 500 else ErrorClass.BAD_REQUEST


class BatchgenError(Exception):
    """Base of every error batchgen raises on purpose (the tree is in this module's docstring)."""


class UsageError(BatchgenError):
    """Bad arguments or environment: nothing was sent (the CLI exits 2)."""


class ConfigError(UsageError):
    """A setting's value is wrong (a keyword argument of the API, a flag, run.json)."""


class RunDirError(UsageError):
    """The run directory is missing, malformed, or in use."""


class RunLocked(RunDirError):
    """Another live process holds the run's lock."""


class RunStopped(BatchgenError):
    """A session stopped early with jobs pending: ``reason`` is the ErrorClass (auth, quota,
    budget, disk, rate_limit, cancelled); ``batchgen.resume(run_dir)`` finishes the rest."""

    def __init__(self, reason: ErrorClass, message: str, run_dir: str = "") -> None:
        super().__init__(f"stopped ({reason.value}): {message}" if message else reason.value)
        self.reason = reason
        self.message = message
        self.run_dir = run_dir


# the error code of a delivered answer the client refused (see AttemptError's ``final``): its
# job failed for good, and resume does not send it again (batchgen.runlog.state)
REFUSED_CODE = "answer_refused"


class AttemptError(Exception):
    """One attempt failed. ``message`` is already redacted (no API key).

    ``final=True``: the provider delivered its answer (and billed the generation) and the
    client refused it for what it is — an image that is not one, broken base64, a decompression
    bomb, an answer over the size cap, a shape this protocol does not have. The same request
    would be generated, billed and refused the same way again, so the job fails for good
    (Action.FAIL_JOB) whatever its class; its code is REFUSED_CODE unless it had one. Faults of
    the way there (a cut connection, a body that is not JSON, a download that failed or
    expired) are not final: the answer never arrived whole."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
        request_id: str | None = None,
        billed_usd: float = 0.0,
        ratelimit: dict[str, str] | None = None,
        usage: Any = None,
        endpoint: str | None = None,
        rerouted: bool = False,
        final: bool = False,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.http_status = http_status
        self.final = final
        self.code = code if code is not None or not final else REFUSED_CODE
        self.retry_after_s = retry_after_s
        self.request_id = request_id
        self.billed_usd = billed_usd
        # x-ratelimit-* headers of the answer, for the adaptive limiter
        self.ratelimit = ratelimit or {}
        # batchgen.provider.base.Usage of a 200 answer that was unusable: it was still billed
        self.usage = usage
        # several endpoints (batchgen.provider.router): the endpoint that answered, the seconds
        # spent waiting for its limiter, and whether the job goes to another endpoint (this
        # one was taken out by an auth/quota answer): then the run goes on and the job is sent
        # again at once, without using up an attempt
        self.endpoint = endpoint
        self.wait_s = 0.0
        self.rerouted = rerouted
        # set by the Router when an auth/quota answer must not stop a run that other
        # endpoints carry on: PENDING (the job's row is final, the job pending for resume)
        self.action_override: Action | None = None

    @property
    def action(self) -> Action:
        """What the pool does: the class's action, except RETRY for a rerouted job (and the
        Router's override)."""
        if self.rerouted:
            return Action.RETRY
        if self.action_override is not None:
            return self.action_override
        return Action.FAIL_JOB if self.final else self.error_class.action

    @property
    def retryable(self) -> bool:
        """Does the retry policy send the job again (attempts left)? Its action, not only its
        class: a refused delivered answer is never retried."""
        return self.action is Action.RETRY

    def __str__(self) -> str:
        where = f"HTTP {self.http_status} " if self.http_status else ""
        code = f" [{self.code}]" if self.code else ""
        return f"{self.error_class}: {where}{self.message}{code}"


_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG})


def refused(message: str, **kw: Any) -> AttemptError:
    """A delivered answer the client refuses, final for its job (see AttemptError)."""
    return AttemptError(ErrorClass.INVALID_RESPONSE, message, final=True, **kw)


def is_disk_error(exc: BaseException) -> bool:
    """The file system refuses writes (full, over quota, read-only, file too big): the run
    cannot save answers and must stop, not retry."""
    return isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``retry-after`` (seconds or an HTTP date).

    ``headers`` is any case-insensitive mapping (aiohttp's CIMultiDict) or a plain dict.
    A value that is not a number of seconds ≥ 0 (``nan``, ``-5``, ``soon``) says nothing: None.
    Huge values are returned as they are; the limiter caps every pause it holds."""
    get = headers.get
    ms = _seconds(get("retry-after-ms") or get("Retry-After-Ms"))
    if ms is not None:
        return ms / 1000.0
    value = get("retry-after") or get("Retry-After")
    if not value:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _seconds(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None  # nan and negatives fail the comparison


# OpenAI's reset format: one or more NUMBER UNIT pairs, nothing else (`6m0s`, `20ms`, `1.5s`)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_WHOLE_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_reset_duration(value: str | None) -> float | None:
    """Parse ``x-ratelimit-reset-*`` values like ``1s``, ``6m0s``, ``20ms`` into seconds.

    Exactly: ``1e9s`` is a billion seconds (not 9), a bare number is seconds, and anything
    else (``-3s``, ``nan``, ``soon``) says nothing (None)."""
    if not value:
        return None
    text = value.strip()
    if _WHOLE_DURATION.fullmatch(text):
        return sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(text))
    number = _seconds(text.removesuffix("s")) if text.endswith("s") and "ms" not in text else None
    return number if number is not None else _seconds(text)


# a field of a provider's answer is cut to this many characters before it is stored
MAX_FIELD_CHARS = 2000


def provider_text(
    value: Any, secrets: Sequence[str] = (), limit: int = MAX_FIELD_CHARS
) -> str | None:
    """A value from a provider's answer made safe to store and print: None stays None,
    anything else (a number, an object, a list) becomes its text, redacted, cut to ``limit``.
    Terminal control sequences are kept here (the log is data); :func:`printable` removes
    them before anything reaches a terminal or a text report."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)
        except (TypeError, ValueError):
            text = repr(value)
    # redact before cutting, so a secret is never cut into a part the patterns miss
    longest = max((len(s) for s in secrets if s), default=0)
    text = redact(text[: limit + longest + 64], secrets)
    return text[:limit]


def error_code(value: Any, secrets: Sequence[str] = ()) -> str | None:
    """``error.code`` / ``error.type`` as providers send it: a string (OpenAI), a number
    (OpenRouter), or something else entirely. A string or a number becomes a short string;
    an object, a list, a boolean or null is no code at all."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return provider_text(value, secrets, limit=200) or None


# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC strings, other ESC pairs,
# then any C0/C1 control but tab and newline, and the bidi overrides that reorder a line
_TERMINAL_UNSAFE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[@-Z\\-_ -/]?[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)


def printable(text: str, *, one_line: bool = False) -> str:
    """``text`` without terminal control sequences (colours, cursor moves, OSC titles and
    hyperlinks, bells): what a provider wrote is shown as data, never executed by the
    terminal. ``one_line`` also turns line breaks and tabs into spaces."""
    if text.isprintable() and not one_line:
        return text
    text = _TERMINAL_UNSAFE.sub("", text)
    if one_line:
        text = text.replace("\n", " ").replace("\t", " ")
    return text


def printable_all(value: Any) -> Any:
    """Every string inside ``value`` (dicts, lists, tuples) passed through :func:`printable`."""
    if isinstance(value, str):
        return printable(value) if not value.isprintable() else value
    if isinstance(value, dict):
        return {k: printable_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(printable_all(v) for v in value)
    return value
