"""How `plan` prints what it adds for specs and edits (batchgen/jobs/tally.py counts it)."""

from __future__ import annotations

from typing import TextIO

from batchgen.jobs.tally import PlanTally, too_many_jobs
from batchgen.numbers import plural

__all__ = ["PlanTally", "print_tally", "too_many_jobs"]


def print_tally(tally: PlanTally, out: TextIO) -> None:
    """Jobs and images per variable value, and the edits' input images."""
    if tally.variables:
        print("by variable                          jobs   images", file=out)
        for name, values in tally.variables.items():
            for value, (jobs, images) in values.items():
                label = f"{name}={value}"
                label = label if len(label) <= 34 else label[:33] + "…"
                print(f"  {label:<34} {jobs:>5,} {images:>8,}", file=out)
    if tally.edit_jobs:
        print(
            f"edits: {plural(tally.edit_jobs, 'job')} with "
            f"{plural(tally.input_images, 'input image')}"
            + (f" and {plural(tally.masks, 'mask')}" if tally.masks else "")
            + f", ~{tally.input_tokens:,} input image tokens (in the quote above)",
            file=out,
        )
