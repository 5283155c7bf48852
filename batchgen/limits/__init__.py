"""Limits: what holds sending back. The autopilot controls that learn a provider's limits
(``autopilot``: the rates; ``inflight``: the in-flight limit; ``tuning``: their settings), the
gate every request passes (``gate.RateLimiter``: pause, rate buckets, adaptive in-flight slots;
``seam.Gate`` is what the pool needs of any gate) and the run's stop switch
(``stop.RunControl``)."""

from batchgen.limits.gate import (
    BURST_S,
    DEFAULT_CONCURRENCY_CAP,
    FIXED_CONCURRENCY,
    MAX_PAUSE_S,
    RateLimiter,
)
from batchgen.limits.pacing import Ticket
from batchgen.limits.seam import Gate
from batchgen.limits.stop import RunControl

__all__ = [
    "BURST_S",
    "DEFAULT_CONCURRENCY_CAP",
    "FIXED_CONCURRENCY",
    "MAX_PAUSE_S",
    "Gate",
    "RateLimiter",
    "RunControl",
    "Ticket",
]
