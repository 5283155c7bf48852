"""`batchgen doctor`: before a batch, every check a failing batch needs, each ✓ / ✗ / ? with
what was seen and, for ✗, the fix (the error taxonomy's remedies). docs/doctor.md."""

from batchgen.doctor.check import DoctorOptions, diagnose, endpoints, run_diagnose
from batchgen.doctor.model import Check, Diagnosis, Section, Status

__all__ = [
    "Check",
    "Diagnosis",
    "DoctorOptions",
    "Section",
    "Status",
    "diagnose",
    "endpoints",
    "run_diagnose",
]
