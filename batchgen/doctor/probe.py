"""``--probe``: one cheapest real request per endpoint — the whole path proved, the image saved
and priced. Sent only after the quote was shown and confirmed (the caller's ``confirm``)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from batchgen.doctor.model import Section, fail, ok
from batchgen.doctor.remote import Endpoint
from batchgen.errors import AttemptError, ErrorClass, redact
from batchgen.images.save import ImageData, save_images
from batchgen.jobs import Job
from batchgen.money.cost import cost_of_attempt
from batchgen.money.load import load_prices
from batchgen.provider.endpoints import EndpointSpec, make_provider


def _save(out_dir: Path, name: str, images: list[ImageData]) -> tuple[list[str], int]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return save_images(out_dir, name, images)


def probe_job(job: Job) -> Job:
    """The job with one image asked for (the cheapest request it can be)."""
    return dataclasses.replace(job, body={**job.body, "n": 1})


async def probe(
    section: Section,
    ep: Endpoint,
    job: Job,
    out_dir: Path,
    *,
    prices_file: str | None,
    price_per_image: float | None,
    timeout: float,
) -> float:
    """Send ``job`` to ``ep``; returns the USD it cost (0 when it failed before a bill)."""
    spec = EndpointSpec(ep.name, ep.protocol, ep.base_url, ep.key_env, ep.models)
    provider = make_provider(spec, ep.key, connections=2)
    started = time.perf_counter()
    try:
        result = await provider.generate(job, timeout=timeout)
    except AttemptError as exc:
        cls = exc.error_class
        section.add(
            fail(
                "probe",
                redact(f"{job.model}: {exc}", (ep.key,)),
                cls.remedy.replace("OPENAI_API_KEY", ep.key_env),
                cls,
            )
        )
        return 0.0
    finally:
        await provider.aclose()
    latency = time.perf_counter() - started
    prices = load_prices(prices_file, fallback_per_image=price_per_image)
    usd, source = cost_of_attempt(prices, job, result.usage, len(result.images))
    try:
        paths, size = _save(out_dir, f"probe-{ep.name}", result.images)
    except OSError as exc:
        section.add(
            fail(
                "probe",
                f"the answer came but could not be saved: {exc}",
                ErrorClass.DISK.remedy,
                ErrorClass.DISK,
            )
        )
        return usd or 0.0
    cost = f"${usd:.4f} ({source})" if usd is not None else "cost unknown (no price)"
    where = ", ".join(str(out_dir / Path(p).name) for p in paths)
    section.add(
        ok(
            "probe",
            f"{job.model}: {len(paths)} image(s), {size:,} bytes in "
            f"{latency:.1f} s, {cost}, saved to {where}",
        )
    )
    return usd or 0.0
