"""Is the endpoint reachable at all? A run whose requests all end in network errors
(connection refused, reset, DNS) gets no answer to learn from: rather than burn every job's
attempts on a dead host and call them "failed for good", the run stops — like a bad key
stops it — with its jobs pending for ``batchgen resume``.

The rule: ``streak`` network errors in a row with no answer of any kind between them (an
answer is any HTTP status: a success, a 429, a 500), and either ``window_s`` seconds since
the last answer (or the start) or a job that has used up its attempts in that streak. So a
run on a dead endpoint stops within about ``window_s`` (the pool's watchdog checks it too,
while every job waits in backoff), and a brief outage that an answer ends is retried as
before.
"""

from __future__ import annotations

from batchgen.errors import ErrorClass
from batchgen.numbers import plural


class Reachability:
    """Counts network errors since the last answer; says when the endpoint looks down."""

    def __init__(self, now: float, *, streak: int = 5, window_s: float = 5.0) -> None:
        self.streak = max(1, streak)
        self.window_s = window_s
        self.errors = 0  # network errors since the last answer
        self.last_answer = now
        self.last_message = ""

    def answered(self, now: float) -> None:
        """Any answer with an HTTP status: the endpoint is reachable."""
        self.errors = 0
        self.last_answer = now

    def failed(self, klass: ErrorClass, message: str, now: float) -> None:
        """A failed attempt: a network error extends the streak, anything else ends it."""
        if klass is ErrorClass.NETWORK:
            self.errors += 1
            self.last_message = message
        elif klass not in (ErrorClass.CANCELLED, ErrorClass.TIMEOUT):
            # (a timeout or a cancellation says nothing either way)
            self.answered(now)

    def down(self, now: float, *, job_exhausted: bool = False) -> str | None:
        """The stop message when the endpoint looks unreachable, else None."""
        if self.errors < self.streak:
            return None
        silent = now - self.last_answer
        if silent < self.window_s and not job_exhausted:
            return None
        last = self.last_message[:300]
        return (
            f"the endpoint is unreachable: {plural(self.errors, 'request')} in a row failed with a "
            f"network error and none was answered for {silent:.0f}s (last: {last}); "
            "the jobs left are pending"
        )
