"""Metadata that survives the run directory, without breaking provenance: ``--metadata
sidecar|embed|none`` (docs/metadata.md)."""

from batchgen.metadata.apply import MODES, Tally, apply, sidecar_path
from batchgen.metadata.containers import has_c2pa

__all__ = ["MODES", "Tally", "apply", "has_c2pa", "sidecar_path"]
