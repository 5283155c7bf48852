"""The simulator's counters: the ground truth tests compare a run's log against."""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left
from collections import Counter
from typing import Any

# Outcomes besides the fault classes (config.FAULT_CLASSES):
OK = "ok"
INVALID_REQUEST = "invalid_request"  # 400 from validation
MODEL_NOT_FOUND = "model_not_found"  # 404
UNAUTHORIZED = "unauthorized"  # missing or wrong key (not an injected auth fault)
SERVER_RATE_LIMITED = "server_rate_limited"  # refused by the rpm/ipm limit
CONCURRENCY_LIMITED = "concurrency_limited"  # refused by max_concurrent (a 429 with no hint)


class SimStats:
    """Counters written by the server's event loop and read from any thread.

    ``accepted`` is kept as two flat arrays (time, n) rather than a list of tuples: a long
    benchmark admits hundreds of thousands of requests, and 12 bytes each is affordable.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.received = 0
            self.first_received: float | None = None  # monotonic time of the first request
            self.outcomes: Counter[str] = Counter()
            self.images_served = 0
            self.downloads = 0  # GET of a dall-e image url
            self.models_listed = 0  # GET /v1/models (free: no image request)
            # image requests being processed at once (arrival to answer): the most seen
            self.peak_in_flight = 0
            self.by_prompt: Counter[str] = Counter()
            # the judge (POST /v1/chat/completions): answers by outcome, images judged by
            # sha256 (a 200 delivered), and usage billed per (endpoint, model)
            self.chat_received = 0
            self.chat_outcomes: Counter[str] = Counter()
            self.judged: Counter[str] = Counter()
            self.billed: dict[str, dict[str, int]] = {}
            self._accepted_t = array("d")
            self._accepted_n = array("i")
            self._refused_t = array("d")  # 429s for the server's limits or its cap on tasks
            self._refused_n = array("i")

    # -- written by the server -------------------------------------------------------------
    def record_received(self, prompt: str | None, t: float | None = None) -> None:
        with self._lock:
            self.received += 1
            if self.first_received is None:
                self.first_received = t
            if prompt is not None:
                self.by_prompt[prompt] += 1

    def record_accepted(self, t: float, n: int) -> None:
        with self._lock:
            self._accepted_t.append(t)
            self._accepted_n.append(n)

    def record_refused(self, t: float, n: int) -> None:
        with self._lock:
            self._refused_t.append(t)
            self._refused_n.append(n)

    def record_outcome(self, outcome: str, images: int = 0) -> None:
        with self._lock:
            self.outcomes[outcome] += 1
            self.images_served += images

    def record_in_flight(self, count: int) -> None:
        with self._lock:
            self.peak_in_flight = max(self.peak_in_flight, count)

    def record_chat(self, outcome: str, sha256: str | None = None) -> None:
        with self._lock:
            self.chat_outcomes[outcome] += 1
            if sha256 is not None:
                self.judged[sha256] += 1

    def record_chat_received(self) -> None:
        with self._lock:
            self.chat_received += 1

    def record_billed(
        self, endpoint: str, model: str, input_tokens: int, output_tokens: int
    ) -> None:
        with self._lock:
            entry = self.billed.setdefault(
                f"{endpoint}:{model}", {"requests": 0, "input_tokens": 0, "output_tokens": 0}
            )
            entry["requests"] += 1
            entry["input_tokens"] += input_tokens
            entry["output_tokens"] += output_tokens

    def record_models_listed(self) -> None:
        with self._lock:
            self.models_listed += 1

    def record_download(self) -> None:
        with self._lock:
            self.downloads += 1

    # -- read by tests and benchmarks ------------------------------------------------------
    @property
    def accepted(self) -> list[tuple[float, int]]:
        """(monotonic time, n) of each request admitted past auth, validation and the limit."""
        with self._lock:
            return list(zip(self._accepted_t, self._accepted_n, strict=True))

    def max_in_window(self, window_s: float, *, images: bool = False) -> int:
        """Most requests (or images) admitted in any window of ``window_s`` seconds."""
        with self._lock:
            times = list(self._accepted_t)
            counts = list(self._accepted_n) if images else [1] * len(times)
        prefix = [0]
        for c in counts:
            prefix.append(prefix[-1] + c)
        best = 0
        for j, t in enumerate(times):
            i = bisect_left(times, t - window_s + 1e-12, 0, j + 1)
            best = max(best, prefix[j + 1] - prefix[i])
        return best

    def snapshot(self, *, timeline: bool = True) -> dict[str, Any]:
        """A JSON-ready copy (what ``GET /_sim/stats`` answers)."""
        with self._lock:
            out: dict[str, Any] = {
                "received": self.received,
                "first_received": self.first_received,
                "outcomes": dict(self.outcomes),
                "images_served": self.images_served,
                "downloads": self.downloads,
                "models_listed": self.models_listed,
                "peak_in_flight": self.peak_in_flight,
                "by_prompt": dict(self.by_prompt),
                "accepted_count": len(self._accepted_t),
                "chat": {
                    "received": self.chat_received,
                    "outcomes": dict(self.chat_outcomes),
                    "judged_by_sha256": dict(self.judged),
                },
                "billed": {k: dict(v) for k, v in self.billed.items()},
            }
            if timeline:
                out["refused"] = [
                    [t, n] for t, n in zip(self._refused_t, self._refused_n, strict=True)
                ]
                out["accepted"] = [
                    [t, n] for t, n in zip(self._accepted_t, self._accepted_n, strict=True)
                ]
        return out

    def __getitem__(self, outcome: str) -> int:
        """``stats["server"]``: how many requests ended with that outcome."""
        with self._lock:
            return self.outcomes[outcome]
