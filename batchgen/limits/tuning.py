"""The autopilot's tuning: how fast its controls grow, cut, hold and probe. One frozen
dataclass, read by both controls (the rates, batchgen.limits.autopilot.RateControl; the
in-flight limit, batchgen.limits.inflight.InflightControl) and by the cluster's shared limit,
which changes its headroom (batchgen.cluster.limit)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AutopilotConfig:
    start_rpm: float = 60.0  # slow start from one request a second
    start_inflight: int = 4
    interval_s: float = 1.0  # how often a rate moves
    ss_factor: float = 2.0  # slow start: × per interval while used and clean
    ss_decrease: float = 0.5  # first 429 ends slow start: the rate sent at then × this
    decrease: float = 0.85  # later 429s: the rate at the loss × this
    approach: float = 0.35  # share of the gap to the plateau closed per interval
    plateau: float = 0.97  # hold at this share of the rate a 429 came at
    hold_s: float = 15.0  # clean seconds at the plateau before probing above it
    probe: float = 0.01  # probe growth per interval, share of w_max ...
    probe_double_s: float = 5.0  # ... doubling every this many clean seconds (up to 64×)
    headroom: float = 0.985  # share of an announced limit to aim for
    cooldown_s: float = 1.0  # 429s this close after a cut belong to the same episode
    floor_rpm: float = 0.5
    latency_tolerance: float = 2.0  # window median over floor median above this: a queue
    probe_wait_s: float = 5.0  # before probing above a refused in-flight count; doubles
    max_probe_wait_s: float = 120.0
