"""What a run needs on this machine: the job file well formed for its models (the same pass
`plan` and `run` make: batchgen.money.precheck), and a run directory that can be written with
room for the images the run will bring."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.doctor.model import Section, fail, ok
from batchgen.errors import ErrorClass
from batchgen.jobs import Job
from batchgen.money.cost import worst_case_usd
from batchgen.money.load import load_prices
from batchgen.money.precheck import check_file
from batchgen.numbers import plural

_MAX_SHOWN = 5
# bytes per pixel of a saved image, by format: a generated PNG is ~1.5–2.5 B/px, JPEG and
# WebP a fraction of that; the estimate is the high side
_BYTES_PER_PIXEL = {"png": 2.5, "jpeg": 0.5, "webp": 0.4}
_DEFAULT_PIXELS = 1024 * 1024


@dataclass(slots=True)
class JobFileFacts:
    models: set[str] = field(default_factory=set)
    images: int = 0
    estimated_bytes: int = 0
    cheapest: Job | None = None  # the job --probe sends
    cheapest_usd: float = 0.0
    checked: bool = False


def job_file_checks(
    section: Section,
    path: str,
    defaults: Mapping[str, Any],
    prices_file: str | None,
    price_per_image: float | None,
) -> JobFileFacts:
    facts = JobFileFacts()
    try:
        prices = load_prices(prices_file, fallback_per_image=price_per_image)
    except (OSError, ValueError) as exc:
        section.add(fail("prices", str(exc), "Fix the price file named above (or drop --prices)"))
        return facts
    best: list[float] = []

    def visit(job: Job) -> None:
        model = job.body.get("model")
        if isinstance(model, str):
            facts.models.add(model)
        n = job.body.get("n")
        count = n if isinstance(n, int) and n > 0 else 1
        facts.images += count
        facts.estimated_bytes += count * _image_bytes(job.body)
        usd = worst_case_usd(prices, job)
        if usd is not None and (not best or usd < best[0]):
            best[:] = [usd]
            facts.cheapest, facts.cheapest_usd = job, usd

    try:
        check = check_file(path, defaults, prices, max_problems=_MAX_SHOWN, on_job=visit)
    except (OSError, ValueError) as exc:
        section.add(
            fail(
                "job file",
                f"{path}: {exc}",
                "Give a readable job file (or fix the --model/--size/--quality/--n defaults)",
            )
        )
        return facts
    validation = check.validation
    if not validation.ok:
        for problem in validation.problems[:_MAX_SHOWN]:
            section.add(
                fail(
                    "job file",
                    str(problem),
                    "Fix the line as the message says (`batchgen plan FILE` lists every problem)",
                )
            )
        return facts
    if check.model_problem_count:
        for problem in check.model_problems[:_MAX_SHOWN]:
            section.add(
                fail(
                    "job settings",
                    str(problem),
                    ErrorClass.BAD_REQUEST.remedy,
                    ErrorClass.BAD_REQUEST,
                )
            )
        more = check.model_problem_count - len(check.model_problems[:_MAX_SHOWN])
        if more > 0:
            section.add(
                fail("job settings", f"… and {more} more", "`batchgen plan FILE` lists them all")
            )
        return facts
    facts.checked = True
    quote = check.quote
    cost = ""
    if quote is not None:
        cost = f", quote ${quote.low_usd:.2f}–${quote.high_usd:.2f}"
        if not quote.complete:
            cost += f" (no price for {', '.join(quote.unknown_models)})"
    section.add(
        ok(
            "job file",
            f"{plural(validation.jobs, 'job')}, {plural(validation.images, 'image')}, sizes, "
            f"qualities and n accepted by their models{cost}",
        )
    )
    return facts


def _image_bytes(body: Mapping[str, Any]) -> int:
    size = body.get("size")
    pixels = _DEFAULT_PIXELS
    if isinstance(size, str) and "x" in size:
        w, _, h = size.partition("x")
        if w.isdigit() and h.isdigit():
            pixels = int(w) * int(h)
    fmt = body.get("output_format")
    per_pixel = _BYTES_PER_PIXEL.get(fmt if isinstance(fmt, str) else "png", 2.5)
    return int(pixels * per_pixel)


def run_dir_checks(section: Section, run_dir: str | Path, estimated_bytes: int) -> None:
    """Writable (a file really written and removed), and free space against the estimate."""
    target = Path(run_dir)
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        section.add(fail("writable", f"{existing} is not a directory", "Choose another --run-dir"))
        return
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".batchgen-doctor-"):
            pass
    except OSError as exc:
        section.add(
            fail(
                "writable",
                f"cannot write in {existing}: {exc.strerror or exc}",
                "Choose a --run-dir you may write to (or fix its permissions)",
                ErrorClass.DISK,
            )
        )
        return
    where = str(target) if existing == target else f"{existing} (creates {target})"
    section.add(ok("writable", where))
    free = shutil.disk_usage(existing).free
    need = estimated_bytes + 16 * 1024 * 1024  # the log, run.json, checks: small
    seen = f"{_size(free)} free, the run needs about {_size(need)}"
    if free < need:
        section.add(
            fail(
                "free space",
                seen,
                ErrorClass.DISK.remedy.split(", then")[0]
                + ", or choose a --run-dir on a bigger disk",
                ErrorClass.DISK,
            )
        )
    else:
        section.add(ok("free space", seen))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
