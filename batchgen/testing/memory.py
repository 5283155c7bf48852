"""An in-memory provider that answers from a script: for tests of the pool, of retries and
pacing, and of code built on batchgen, without a network or a simulator process.

    provider = MemoryProvider({"a": [rate_limited(2.0), server_error(), ok()]}, latency_s=0.5)
    rows: list[dict] = []                           # a list is a sink
    tally = run_virtual(lambda: run_pool(jobs, provider, RateLimiter(rpm=60), rows, ...))

Job ``a`` gets a 429 asking for two seconds, then a 500, then its image; every other job its
image at once. Latencies are slept on the event loop's clock, so under
``batchgen.testing.run_virtual`` the whole batch takes no real time and ``provider.calls``
tells when (on the loop's clock) each request went out and how it ended.

A script is one of: a mapping of job id → the answers to that job's requests in order; a
sequence of answers handed out in the order requests arrive, whichever job sent them; a
function of (job, the job's request number from 1) → answer. Past its end, ``default``.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio

from batchgen.errors import AttemptError, ErrorClass, classify_http
from batchgen.images import ImageData
from batchgen.jobs.model import Job
from batchgen.provider.base import GenerateResult, Usage

__all__ = [
    "PNG_1X1",
    "Answer",
    "Call",
    "MemoryProvider",
    "Script",
    "auth",
    "bad_request",
    "content_policy",
    "invalid_response",
    "network",
    "ok",
    "quota",
    "rate_limited",
    "server_error",
    "timeout",
]


def _png(width: int = 1, height: int = 1) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixels = zlib.compress(b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG_1X1 = _png()
"""A valid one-pixel PNG: the image of every successful answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One scripted answer. ``status`` 200 is a success; 0 is no answer (timeout, network);
    any other status is an error, of ``error_class`` or else classified like an HTTP answer
    (``batchgen.errors.classify_http`` of the status and ``code``)."""

    status: int = 200
    error_class: ErrorClass | None = None
    code: str | None = None
    message: str = ""
    latency_s: float | None = None  # None: the provider's latency_s
    retry_after_s: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    usage: Usage | None = None
    images: int | None = None  # None: the job's n
    billed_usd: float = 0.0

    @property
    def klass(self) -> ErrorClass | None:
        """The error class this answer raises, or None for a success."""
        if self.error_class is not None:
            return self.error_class
        if self.status == 200:
            return None
        return classify_http(self.status, self.code)


def ok(
    latency_s: float | None = None,
    *,
    usage: Usage | None = None,
    images: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """The job's images (``images`` of them; the job's n by default)."""
    return Answer(latency_s=latency_s, usage=usage, images=images, headers=headers or {})


def rate_limited(
    retry_after_s: float | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    code: str = "rate_limit_exceeded",
    message: str = "Rate limit reached on requests per min (RPM)",
    latency_s: float | None = 0.0,
) -> Answer:
    """HTTP 429 for pacing, with or without a Retry-After hint and x-ratelimit headers."""
    return Answer(
        429,
        code=code,
        message=message,
        retry_after_s=retry_after_s,
        headers=headers or {},
        latency_s=latency_s,
    )


def server_error(status: int = 500, *, latency_s: float | None = None) -> Answer:
    return Answer(status, code="server_error", message=f"HTTP {status}", latency_s=latency_s)


def timeout() -> Answer:
    """No answer: the request hangs until the pool's timeout and fails as class timeout."""
    return Answer(0, ErrorClass.TIMEOUT, latency_s=float("inf"))


def network(latency_s: float | None = 0.0) -> Answer:
    return Answer(0, ErrorClass.NETWORK, message="connection reset", latency_s=latency_s)


def auth() -> Answer:
    return Answer(401, code="invalid_api_key", message="Incorrect API key provided", latency_s=0)


def quota() -> Answer:
    return Answer(
        429, code="insufficient_quota", message="You exceeded your current quota", latency_s=0
    )


def content_policy() -> Answer:
    return Answer(
        400,
        code="content_policy_violation",
        message="Your request was rejected by the safety system",
        latency_s=0,
    )


def bad_request(message: str = "Invalid size") -> Answer:
    return Answer(400, code="invalid_value", message=message, latency_s=0)


def invalid_response(*, usage: Usage | None = None, billed_usd: float = 0.0) -> Answer:
    """A 200 whose image is unusable (billed all the same when ``usage`` or ``billed_usd``)."""
    return Answer(
        200,
        ErrorClass.INVALID_RESPONSE,
        message="the answer held no decodable image",
        usage=usage,
        billed_usd=billed_usd,
    )


Script = Mapping[str, Sequence[Answer]] | Sequence[Answer] | Callable[[Job, int], Answer]


@dataclass(slots=True)
class Call:
    """One request as the provider saw it; times are the event loop's."""

    job_id: str
    number: int  # the job's request number, from 1
    sent_at: float
    answer: Answer
    ended_at: float | None = None
    outcome: str = ""  # "ok" or the error class


class MemoryProvider:
    """A :class:`batchgen.provider.base.Provider` that answers from a script."""

    adds_inflight = False

    def __init__(
        self,
        script: Script | None = None,
        *,
        default: Answer | None = None,
        latency_s: float = 0.0,
        name: str = "memory",
    ) -> None:
        self.name = name
        self.script: Script = script if script is not None else ()
        self.default = default or ok()
        self.latency_s = latency_s
        self.calls: list[Call] = []
        self.sent: Counter[str] = Counter()  # job id → requests
        self.active = 0
        self.peak = 0  # the most requests in flight at once
        self.closed = False
        self._next = 0  # position in a sequence script

    def _answer(self, job: Job, number: int) -> Answer:
        script = self.script
        if callable(script):
            return script(job, number)
        if isinstance(script, Mapping):
            answers = script.get(job.id, ())
            return answers[number - 1] if number <= len(answers) else self.default
        if self._next < len(script):
            self._next += 1
            return script[self._next - 1]
        return self.default

    def outcomes(self, job_id: str) -> list[str]:
        """How each request of ``job_id`` ended, in order ("ok" or an error class)."""
        return [c.outcome for c in self.calls if c.job_id == job_id]

    async def generate(self, job: Job, *, timeout: float) -> GenerateResult:
        self.sent[job.id] += 1
        number = self.sent[job.id]
        answer = self._answer(job, number)
        call = Call(job.id, number, anyio.current_time(), answer)
        self.calls.append(call)
        latency = self.latency_s if answer.latency_s is None else answer.latency_s
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await anyio.sleep(min(latency, timeout))
        finally:
            self.active -= 1
            call.ended_at = anyio.current_time()
        klass = answer.klass
        if latency > timeout:
            klass = ErrorClass.TIMEOUT
            answer = Answer(0, klass, message=f"no answer within {timeout:g}s")
        call.outcome = klass.value if klass is not None else "ok"
        request_id = f"mem-{job.id}-{number}"
        if klass is None:
            count = job.n if answer.images is None else answer.images
            return GenerateResult(
                images=[ImageData(PNG_1X1, "png") for _ in range(count)],
                usage=answer.usage,
                request_id=request_id,
                ratelimit=dict(answer.headers),
            )
        raise AttemptError(
            klass,
            answer.message or klass.diagnosis,
            http_status=answer.status or None,
            code=answer.code,
            retry_after_s=answer.retry_after_s,
            request_id=request_id if answer.status else None,
            billed_usd=answer.billed_usd,
            ratelimit=dict(answer.headers),
            usage=answer.usage,
        )

    async def aclose(self) -> None:
        self.closed = True
