"""The error taxonomy of one attempt: one definition, used by the retry policy, the pool and
the analyzers (the tree is drawn in ``batchgen.errors``' docstring).

Every failure of an attempt becomes an :class:`AttemptError` carrying an :class:`ErrorClass`;
the class's :class:`Action` says what the pool does, its diagnosis and remedy what the report
tells the user; :func:`classify_http` maps an HTTP answer to its class.
"""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass
from typing import Any


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
        "Not sent: its worst-case cost would have passed the run's budget: --max-cost, or "
        "this month's --monthly-budget or --project-budget in the spend ledger.",
        "`batchgen resume RUN_DIR --max-cost HIGHER` to finish; a run a monthly budget "
        "stopped: raise --monthly-budget or --project-budget (flag or config.toml), then "
        "`batchgen resume RUN_DIR` (`batchgen report RUN_DIR` names the budget).",
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
