"""What the gate found and says: the progress line's part and the record of what the
autopilot learned (run.json's ``summary.autopilot``, the report's "limits found")."""

from __future__ import annotations

import math
from typing import Any, Protocol

import anyio

from batchgen.limits.inflight import InflightControl
from batchgen.limits.pacing import Paced


class Found(Protocol):
    """What is read of the gate (batchgen.limits.gate.RateLimiter), which calls these
    functions: a protocol, so this module does not import the gate back."""

    requests: Paced | None
    images: Paced | None
    inflight: InflightControl
    adapt: bool
    paused_until: float
    paused_total_s: float
    capped_pause: tuple[float, float] | None
    throttled: int

    @property
    def slots_taken(self) -> int: ...


def describe(gate: Found) -> str:
    """The progress line's part: rates, slots, a pause."""
    parts = []
    if gate.requests is not None:
        parts.append(f"{gate.requests.control.current:,.0f} req/min")
    if gate.images is not None and math.isfinite(gate.images.control.current):
        parts.append(f"{gate.images.control.current:,.0f} img/min")
    parts.append(f"{gate.slots_taken}/{gate.inflight.slots} in flight")
    if gate.paused_until > anyio.current_time():
        left = gate.paused_until - anyio.current_time()
        parts.append(f"paused {left:.1f}s")
        if gate.capped_pause is not None:
            parts.append(f"(asked {gate.capped_pause[0]:.0f}s, capped)")
    return ", ".join(parts)


def learned(gate: Found) -> dict[str, Any]:
    """What the autopilot found, for run.json and the report."""
    req = gate.requests.control if gate.requests else None
    img = gate.images.control if gate.images else None
    conc = gate.inflight
    return {
        "adaptive": gate.adapt,
        "rpm": _round(req.learned() if req else None),
        "rpm_source": req.source if req else None,
        "ipm": _round(img.learned() if img else None),
        "ipm_source": img.source if img else None,
        "concurrency": conc.learned(),
        "concurrency_source": (
            "flag" if conc.fixed else "429" if conc.losses else "latency" if conc.shrinks else None
        ),
        "final_rpm": _round(req.current if req else None),
        "final_ipm": _round(img.current if img else None),
        "final_concurrency": conc.slots,
        "peak_inflight": conc.peak,
        "throttled": gate.throttled,
        "rate_cuts": (req.losses if req else 0) + (img.losses if img else 0),
        "paused_s": round(gate.paused_total_s, 3),
        "capped_pause_s": gate.capped_pause[0] if gate.capped_pause else None,
    }


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 1)
