"""The simulator's knobs: :class:`SimConfig` lives in :mod:`batchgen.simconfig` (the config
layer, so a run's settings carry it typed from the flag to the server); the simulator's
modules import it from here."""

from __future__ import annotations

from batchgen.simconfig import SimConfig, SimConfigError
from batchgen.simoptions import (
    BATCH_FAULTS,
    FAIL_AFTER_CLASSES,
    FAULT_CLASSES,
    LATENCY_DISTRIBUTIONS,
    LATENCY_PROFILES,
    LIMIT_MESSAGES,
    RETRY_AFTER_MODES,
    parse_faults,
    parse_schedule,
)

__all__ = [
    "BATCH_FAULTS",
    "FAIL_AFTER_CLASSES",
    "FAULT_CLASSES",
    "LATENCY_DISTRIBUTIONS",
    "LATENCY_PROFILES",
    "LIMIT_MESSAGES",
    "RETRY_AFTER_MODES",
    "SimConfig",
    "SimConfigError",
    "parse_faults",
    "parse_schedule",
]
