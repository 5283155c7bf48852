"""The provider seam: the pool sees only this Protocol, so other protocols (BFL polling,
Replicate, fal, Gemini) can be added without touching the pool."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from batchgen.images import ImageData
from batchgen.jobs.model import Job

__all__ = ["DEFAULT_BASE_URL", "GenerateResult", "ImageData", "Provider", "Usage"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage as the provider bills it (gpt-image family)."""

    input_tokens: int = 0
    input_text_tokens: int = 0
    input_image_tokens: int = 0
    output_tokens: int = 0
    # some count was not a plausible token count (batchgen.provider.usage): the attempt is
    # priced from the table, never below it
    suspect: bool = False


@dataclass(frozen=True, slots=True)
class GenerateResult:
    images: list[ImageData]
    usage: Usage | None = None
    request_id: str | None = None
    http_status: int = 200
    # rate-limit headers seen on the answer, for the adaptive limiter
    ratelimit: dict[str, str] = field(default_factory=dict)
    # what was odd about a usable answer (more images than asked for, a lying usage): the
    # row's error_message, so the report can show it
    note: str | None = None
    # several endpoints (batchgen.provider.router): which one answered, and the seconds this
    # attempt waited for that endpoint's limiter (the log's wait_s, not its latency)
    endpoint: str | None = None
    wait_s: float = 0.0


class Provider(Protocol):
    name: str

    @property
    def adds_inflight(self) -> bool:
        """True when the provider adds each job to the pool's in-flight set itself, when its
        request really leaves (a Router, after an endpoint's limiter); the attempt adds it
        otherwise, before the request."""
        ...

    async def generate(self, job: Job, *, timeout: float) -> GenerateResult:
        """Send one request. Raise batchgen.errors.AttemptError on any failure."""
        ...

    async def aclose(self) -> None: ...
