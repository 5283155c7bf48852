"""Job files → validated, streamed :class:`Job` objects with stable ids.

Validate first (``validate_file``), then stream (``iter_jobs``); both read the file the same
way, so ids and line numbers agree. ``job_index`` is the cheap id listing for resume.
"""

from batchgen.jobs.fields import check_fields
from batchgen.jobs.formats import FORMATS, JobFileError, Problem
from batchgen.jobs.model import Job, canonical_json, fingerprint
from batchgen.jobs.validate import (
    Validation,
    iter_jobs,
    job_index,
    sha256_file,
    validate_file,
)

__all__ = [
    "FORMATS",
    "Job",
    "JobFileError",
    "Problem",
    "Validation",
    "canonical_json",
    "check_fields",
    "fingerprint",
    "iter_jobs",
    "job_index",
    "sha256_file",
    "validate_file",
]
