"""A job's attempts as the retry policy counts them, and the backoff between them."""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, wait_random_exponential

from batchgen.errors import AttemptError, ErrorClass
from batchgen.jobs.model import Job


@dataclass(slots=True)
class Tries:
    """Attempts of one job that count against max_attempts (a 429 for rate does not)."""

    failures: int = 0
    number: int = 0  # every attempt sent, 429s included: the row's ``attempt``


@dataclass(slots=True, kw_only=True)
class Try(Tries):
    """A job's attempts as its rows tell them: the counts (``Tries``: ``number`` is 1-based
    once sent, 0 for a job skipped before any attempt) and the timings of the current
    attempt, set again for each one. One per job, not per attempt."""

    job: Job
    queued_at: float
    started: float | None = None  # wall clock, when the request went out
    t0: float = 0.0  # the clock's monotonic time at the same moment, for the latency
    wait_s: float | None = None  # spent waiting for the limiter


class Backoff:
    """Full-jitter exponential backoff, or exactly the server's Retry-After when it gave one.

    The exponent counts the job's failures that use up attempts, not tenacity's attempt
    number: the pool sends a job's first attempt without tenacity (most jobs never retry), and
    the 429s between failures do not count."""

    def __init__(self, base: float, cap: float, tries: Tries) -> None:
        self._jitter = wait_random_exponential(multiplier=base, max=cap)
        self._cap = cap
        self._tries = tries
        self._state: RetryCallState | None = None  # made at the first backoff: most jobs have none

    def delay(self, exc: BaseException | None) -> float:
        if isinstance(exc, AttemptError) and (
            exc.error_class is ErrorClass.RATE_LIMIT or exc.rerouted
        ):
            return 0.0  # the limiter paused the whole pool for it already / another endpoint
        if isinstance(exc, AttemptError) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, self._cap)
        if self._state is None:
            self._state = RetryCallState(AsyncRetrying(), None, (), {})
        self._state.attempt_number = max(1, self._tries.failures)
        return float(self._jitter(self._state))

    def __call__(self, state: RetryCallState) -> float:
        return self.delay(state.outcome.exception() if state.outcome else None)
