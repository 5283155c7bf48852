"""Which fault (if any) a request gets: prompt directives, ``fail_after``, then seeded rates.

Random draws are a hash of (seed, prompt, attempt number of that prompt), not a shared RNG
stream, so the same job file meets the same faults on every run under a seed, whatever order
concurrent requests arrive in.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass
from statistics import NormalDist

from batchgen.provider.typical import typical_latency
from batchgen.sim.config import FAULT_CLASSES, SimConfig
from batchgen.sim.models import ApiError, ImageRequest

_DIRECTIVE = re.compile(r"\[sim:([^\]*]*)(?:\*(\d+))?\]")
# directives about what the picture shows, not faults: ``[sim:wrong]`` makes the job's first
# image (``[sim:wrong*K]``: its first K generation rounds) come out not matching the prompt, and
# the simulator's judge (sim/chat.py) says so with a low score
QUALITY_DIRECTIVES = frozenset({"wrong"})
# directives about the answer's shape: ``[sim:data_url]`` answers each image as a
# ``data:image/png;base64,...`` URL (fal's sync_mode, several gateways) in the field that
# carries a URL (OpenAI's ``url``, fal's and BFL's result URL; Gemini's ``inlineData.data``);
# ``[sim:b64_lines]`` writes the base64 (OpenAI's ``b64_json``, Gemini's ``inlineData.data``)
# in lines of 76 characters ending in CRLF, as RFC 2045 (MIME) has it and Java's
# ``Base64.getMimeEncoder()`` and .NET's ``InsertLineBreaks`` write it in gateways;
# ``[sim:status_200]`` sends a fault's JSON error answer (auth, quota, a 429, a refusal, a 500)
# with HTTP 200, its body unchanged, as OpenRouter documents for errors that occur once
# generation has begun and as some self-hosted gateways answer every error;
# ``[sim:snake_case]`` writes a Gemini answer's keys in snake_case (``inline_data``,
# ``finish_reason``), as a gateway that dumps the google-genai SDK's objects
# (``model_dump()``) does — protobuf's JSON mapping takes both spellings
SHAPE_DIRECTIVES = frozenset({"data_url", "b64_lines", "status_200", "snake_case"})


@dataclass(frozen=True, slots=True)
class Directive:
    fault: str
    times: int | None  # None: on every attempt


@dataclass(frozen=True, slots=True)
class Decision:
    fault: str | None  # a class of FAULT_CLASSES, or None for a normal answer
    source: str  # "directive" / "fail_after" / "random" / "none"
    latency_s: float


def parse_directives(prompt: str) -> tuple[Directive, ...]:
    """``[sim:CLASS]`` / ``[sim:CLASS*K]`` in order; K attempts each, then the next one."""
    if "[sim:" not in prompt:
        return ()
    found = []
    for name, times in _DIRECTIVE.findall(prompt):
        if name in QUALITY_DIRECTIVES or name in SHAPE_DIRECTIVES:
            continue
        if name not in FAULT_CLASSES:
            msg = (
                f"Unknown simulator directive [sim:{name}] in the prompt; "
                f"use one of: {', '.join(FAULT_CLASSES)}."
            )
            raise ApiError(400, msg, param="prompt", code="invalid_value")
        found.append(Directive(name, int(times) if times else None))
    return tuple(found)


def wants_data_url(prompt: str) -> bool:
    """``[sim:data_url]`` in the prompt: images as data: URLs."""
    return "[sim:data_url]" in prompt


def wants_b64_lines(prompt: str) -> bool:
    """``[sim:b64_lines]`` in the prompt: base64 in MIME lines."""
    return "[sim:b64_lines]" in prompt


def wants_status_200(prompt: str) -> bool:
    """``[sim:status_200]`` in the prompt: error answers with HTTP 200."""
    return "[sim:status_200]" in prompt


def mime_b64(data: bytes) -> str:
    """RFC 2045 base64: lines of 76 characters, each ended by CRLF but the last."""
    flat = base64.b64encode(data).decode("ascii")
    return "\r\n".join(flat[i : i + 76] for i in range(0, len(flat), 76))


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def wrong_rounds(prompt: str) -> int:
    """How many generation rounds of this prompt come out wrong: 0 without ``[sim:wrong]``,
    1 for ``[sim:wrong]``, K for ``[sim:wrong*K]``."""
    if "[sim:wrong" not in prompt:
        return 0
    for name, times in _DIRECTIVE.findall(prompt):
        if name == "wrong":
            return int(times) if times else 1
    return 0


def directive_fault(directives: tuple[Directive, ...], attempt: int) -> str | None:
    """The fault for the ``attempt``-th (1-based) attempt of a prompt, or None."""
    used = 0
    for d in directives:
        if d.times is None:
            return d.fault
        if attempt <= used + d.times:
            return d.fault
        used += d.times
    return None


def _uniforms(seed: int, prompt: str, attempt: int) -> tuple[float, float]:
    digest = hashlib.blake2b(f"{seed}\x00{attempt}\x00{prompt}".encode(), digest_size=16).digest()
    scale = float(1 << 64)
    return int.from_bytes(digest[:8], "little") / scale, int.from_bytes(
        digest[8:], "little"
    ) / scale


class FaultPlanner:
    """Per-prompt attempt counts and the ``fail_after`` tally; lives on the event loop."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.ok_admitted = 0

    def reset(self) -> None:
        self.attempts.clear()
        self.ok_admitted = 0

    def decide(
        self,
        config: SimConfig,
        prompt: str,
        directives: tuple[Directive, ...],
        req: ImageRequest | None = None,
    ) -> Decision:
        """Called once per request that passed auth, validation and the server limit; ``req``
        picks the model's typical latency when ``config.latency_profile`` is "models"."""
        random_needed = (
            bool(config.faults)
            or (config.latency_jitter > 0 and config.latency_mean > 0)
            or bool(config.latency_profile)
        )
        attempt = 0
        if directives or random_needed:
            # counted only when it matters: a benchmark of a million distinct prompts with no
            # faults should not keep a million counters
            self.attempts[prompt] += 1
            attempt = self.attempts[prompt]
        u_fault, u_latency = (
            _uniforms(config.seed, prompt, attempt) if random_needed else (1.0, 0.5)
        )
        latency = _latency(config, u_latency, req) * config.time_scale
        fault = directive_fault(directives, attempt)
        if fault is not None:
            return Decision(fault, "directive", latency)
        for cls in ("auth", "quota"):
            limit = config.fail_after.get(cls)
            if limit is not None and self.ok_admitted >= limit:
                return Decision(cls, "fail_after", latency)
        cumulative = 0.0
        for cls in FAULT_CLASSES:
            cumulative += config.faults.get(cls, 0.0)
            if u_fault < cumulative:
                return Decision(cls, "random", latency)
        # counted at admission, not completion, so fail_after is exact under concurrency
        self.ok_admitted += 1
        return Decision(None, "none", latency)


def _latency(config: SimConfig, u: float, req: ImageRequest | None = None) -> float:
    if config.latency_profile == "models" and req is not None:
        typical = typical_latency(req.model, req.quality, req.size)
        z = _STANDARD_NORMAL.inv_cdf(min(max(u, 1e-12), 1 - 1e-12))
        return typical.median_s * math.exp(typical.sigma * z)
    mean, jitter = config.latency_mean, config.latency_jitter
    if mean <= 0:
        return 0.0
    if jitter <= 0:
        return mean
    if config.latency_dist == "uniform":
        return max(0.0, mean + (2 * u - 1) * jitter)
    # lognormal with the requested mean and standard deviation, via the inverse normal CDF
    sigma2 = math.log(1 + (jitter / mean) ** 2)
    mu = math.log(mean) - sigma2 / 2
    z = _STANDARD_NORMAL.inv_cdf(min(max(u, 1e-12), 1 - 1e-12))
    return math.exp(mu + math.sqrt(sigma2) * z)


_STANDARD_NORMAL = NormalDist()
