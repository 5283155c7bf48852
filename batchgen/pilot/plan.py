"""``RUN_DIR/pilot.json``: what a pilot is (the job file, its sample, the settings, the bar
and target), written before its first request; ``pilot-jobs.jsonl`` the jobs it runs (each
sampled job under each setting, id ``<job id>=<setting slug>``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from batchgen.errors import UsageError
from batchgen.runlog.fsio import atomic_write_bytes

PILOT_FILE = "pilot.json"
RESULT_FILE = "pilot-result.json"
JOBS_FILE = "pilot-jobs.jsonl"


@dataclass(frozen=True, slots=True)
class PilotPlan:
    job_file: str  # absolute
    job_sha256: str
    jobs_total: int
    images_total: int
    seed: int
    sample: list[dict[str, Any]]  # {"id", "line", "vars"} of each sampled job
    settings: list[dict[str, Any]]  # {"label", "slug", "values"}
    pilot_jobs: dict[str, list[str]]  # pilot job id -> [job id, setting slug]
    bar: float
    target: float
    confidence: float
    defaults: dict[str, Any] = field(default_factory=dict)  # the job defaults of the sample
    version: int = 1

    def setting(self, slug: str) -> dict[str, Any]:
        for s in self.settings:
            if s["slug"] == slug:
                return s
        raise KeyError(slug)

    def save(self, run_dir: Path) -> None:
        data = json.dumps(asdict(self), indent=2, ensure_ascii=False).encode()
        atomic_write_bytes(run_dir / PILOT_FILE, data)

    @classmethod
    def load(cls, run_dir: Path | str) -> PilotPlan:
        path = Path(run_dir) / PILOT_FILE
        try:
            raw: Mapping[str, Any] = json.loads(path.read_text("utf-8"))
            return cls(**raw)
        except FileNotFoundError:
            msg = f"{path} not found: {run_dir} is not a pilot (run `batchgen pilot JOBS` first)"
            raise UsageError(msg) from None
        except (ValueError, TypeError) as exc:
            msg = f"{path}: not a pilot file this batchgen reads ({exc}); run the pilot again"
            raise UsageError(msg) from None


def save_result(run_dir: Path, result: Mapping[str, Any]) -> None:
    data = json.dumps(result, indent=2, ensure_ascii=False).encode()
    atomic_write_bytes(run_dir / RESULT_FILE, data)


def load_result(run_dir: Path | str) -> dict[str, Any] | None:
    try:
        out: dict[str, Any] = json.loads((Path(run_dir) / RESULT_FILE).read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return out


def no_edits(job_file: Path, line: int) -> None:
    msg = (
        f"{job_file}:{line}: an edit (image/mask); the pilot samples generations only — "
        "pilot a file of generations, or compare settings with a spec matrix"
    )
    raise UsageError(msg)
