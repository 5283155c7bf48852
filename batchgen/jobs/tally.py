"""What a plan adds for specs and edits: the --max-jobs gate (counted before anything is
expanded), jobs and images per value of each variable, and the input images of edits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.jobs.model import Job
from batchgen.jobs.spec import SpecProblems, count, is_spec, load_spec

# a spec past this many jobs without --max-jobs is said, and asked about, before its jobs are
# made and checked one by one (10⁹ cells would run silently for hours)
ASK_ABOVE_JOBS = 100_000


def spec_size(path: str | Path) -> tuple[int, str] | None:
    """(jobs, how: "3 style × 2 background") of a spec — computed, not expanded. None when
    it is no spec or has problems of its own (validation reports them)."""

    path = Path(path)
    if not is_spec(path) or not path.is_file():
        return None
    try:
        spec = load_spec(path)
    except SpecProblems:
        return None
    factors = [f"{len(v)} {k}" for k, v in spec.matrix]
    if spec.zipped:
        factors.append(f"{len(spec.zipped[0][1])} zip rows")
    if spec.files is not None:
        factors.append(f"{len(spec.files)} files")
    if spec.csv_path is not None:
        factors.append(f"{spec.csv_rows} CSV rows")
    factors += [f"{len(v)} variants" for v in spec.variants]
    if spec.repeat > 1:
        factors.append(f"repeat {spec.repeat}")
    return count(spec), " × ".join(factors) or "1"


def too_many_jobs(path: str | Path, max_jobs: int | None) -> tuple[str, int] | None:
    """(message, count) when a spec expands past ``max_jobs`` — computed, not expanded.
    None when it fits, is no spec, or has problems of its own (validation reports them)."""
    if max_jobs is None:
        return None
    size = spec_size(path)
    if size is None or size[0] <= max_jobs:
        return None
    total, how = size
    msg = (
        f"{path}: expands to {total:,} jobs ({how}), more than --max-jobs {max_jobs:,}: "
        "shrink the matrix, or raise --max-jobs"
    )
    return msg, total


@dataclass
class PlanTally:
    """Per-variable counts and edit inputs, fed every job by the validation pass."""

    variables: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    edit_jobs: int = 0
    input_images: int = 0
    masks: int = 0
    input_tokens: int = 0

    def add(self, job: Job) -> None:
        if job.vars:
            for name, value in job.vars.items():
                if name in ("images", "image", "mask"):
                    value = Path(value).stem
                cell = self.variables.setdefault(name, {}).setdefault(value, [0, 0])
                cell[0] += 1
                cell[1] += job.n
        if job.inputs:
            self.edit_jobs += 1
            self.input_images += sum(1 for i in job.inputs if i.role == "image")
            self.masks += sum(1 for i in job.inputs if i.role == "mask")
            self.input_tokens += job.input_image_tokens

    def clear(self) -> None:
        self.variables.clear()
        self.edit_jobs = self.input_images = self.masks = self.input_tokens = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "variables": {
                name: {v: {"jobs": c[0], "images": c[1]} for v, c in values.items()}
                for name, values in self.variables.items()
            },
            "edits": {
                "jobs": self.edit_jobs,
                "input_images": self.input_images,
                "masks": self.masks,
                "input_image_tokens_estimate": self.input_tokens,
            },
        }
