"""`batchgen doctor`, the checklist of "my generations keep failing" run for you: for every
endpoint a run would use, the network (proxy, name, connection, TLS, round trip), the key
(present, sent the protocol's way, accepted by a free call), the job file's models served
there, the rate limits seen; then the job file against its models' limits and the run
directory. Nothing is spent unless ``probe`` is set (and ``confirm`` says yes to the quote)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from batchgen.config import with_default_model
from batchgen.doctor import local, net, remote
from batchgen.doctor.model import Diagnosis, Section, fail, unknown
from batchgen.doctor.probe import probe, probe_job
from batchgen.errors import redact
from batchgen.provider.base import DEFAULT_BASE_URL
from batchgen.provider.endpoints import LOCAL_KEY, is_loopback, load_providers


@dataclass(slots=True)
class DoctorOptions:
    jobfile: str | None = None
    providers: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)  # --model/--size/--quality/--n
    prices: str | None = None
    price_per_image: float | None = None
    run_dir: str | None = None
    rpm: float | None = None
    ipm: float | None = None
    concurrency: int | None = None
    adaptive: bool = True
    timeout: float = 10.0
    probe: bool = False
    environ: Mapping[str, str] | None = None  # the keys' variables (default os.environ)


def endpoints(opts: DoctorOptions) -> list[remote.Endpoint]:
    """The endpoints a run with these options would use (a providers file's, or the one of
    --base-url); raises UsageError (EndpointError) for a bad providers file."""
    env = os.environ if opts.environ is None else opts.environ
    if opts.providers:
        out = []
        for spec in load_providers(opts.providers):
            loop = is_loopback(urlsplit(spec.base_url).hostname or "")
            given = env.get(spec.key_env, "")
            key = given or (LOCAL_KEY if loop else "")
            out.append(
                remote.Endpoint(
                    spec.name,
                    spec.protocol,
                    spec.base_url,
                    spec.key_env,
                    key,
                    spec.models,
                    loop,
                    bool(given),
                )
            )
        return out
    url = opts.base_url or env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    key_env = opts.api_key_env or "OPENAI_API_KEY"
    loop = is_loopback(urlsplit(url).hostname or "")
    given = env.get(key_env, "")
    key = given or (LOCAL_KEY if loop else "")
    return [remote.Endpoint("default", "openai", url, key_env, key, (), loop, bool(given))]


async def diagnose(opts: DoctorOptions, confirm: Callable[[str], bool] | None = None) -> Diagnosis:
    """Every check; ``confirm(quote_text)`` is asked before --probe sends anything."""
    diagnosis = Diagnosis()
    eps = endpoints(opts)
    facts = local.JobFileFacts()
    jobs_section = None
    if opts.jobfile:
        jobs_section = Section(f"job file {opts.jobfile}")
        # a job that names no model runs as batchgen's default, so it is checked as that
        defaults = with_default_model(opts.defaults)
        facts = local.job_file_checks(
            jobs_section, opts.jobfile, defaults, opts.prices, opts.price_per_image
        )
    ready: list[remote.Endpoint] = []
    for ep in eps:
        section = Section(f"endpoint {ep.name} ({ep.protocol}, {redact(ep.base_url)})")
        diagnosis.sections.append(section)
        if await _endpoint_checks(section, ep, facts, opts):
            ready.append(ep)
    if jobs_section is not None:
        diagnosis.sections.append(jobs_section)
    run_dir = Path(opts.run_dir or "runs")
    rundir_section = Section(f"run directory {run_dir}")
    local.run_dir_checks(rundir_section, run_dir, facts.estimated_bytes)
    diagnosis.sections.append(rundir_section)
    if opts.probe:
        diagnosis.spent_usd = await _probe(diagnosis, ready, facts, opts, run_dir, confirm)
    return diagnosis


async def _endpoint_checks(
    section: Section, ep: remote.Endpoint, facts: local.JobFileFacts, opts: DoctorOptions
) -> bool:
    if not await net.network_checks(section, ep.base_url, opts.timeout):
        return False
    if not remote.key_check(section, ep):
        return False
    seen = await remote.free_call(section, ep, opts.timeout)
    if section.failed:
        return False
    if facts.models:
        remote.models_check(section, ep, seen, facts.models)
    await remote.limits_check(section, seen, opts.rpm, opts.ipm, opts.concurrency, opts.adaptive)
    return not section.failed


async def _probe(
    diagnosis: Diagnosis,
    ready: list[remote.Endpoint],
    facts: local.JobFileFacts,
    opts: DoctorOptions,
    run_dir: Path,
    confirm: Callable[[str], bool] | None,
) -> float:
    section = Section("probe")
    diagnosis.sections.append(section)
    if facts.cheapest is None:
        section.add(
            fail(
                "probe",
                "no job to send: the probe sends the job file's cheapest job",
                "Give a job file (batchgen doctor JOBS --probe) with a priced model",
            )
        )
        return 0.0
    job = probe_job(facts.cheapest)
    targets = [ep for ep in ready if not ep.models or job.model in ep.models]
    if not targets:
        section.add(
            fail("probe", "no endpoint passed its checks (see above)", "Fix the ✗ above first")
        )
        return 0.0
    each = facts.cheapest_usd / max(1, int(facts.cheapest.body.get("n") or 1))
    text = (
        f"--probe sends {len(targets)} request(s) of 1 image ({job.model}, job "
        f"{job.id}), at most ${each * len(targets):.4f} in all"
    )
    if confirm is None or not confirm(text):
        section.add(
            unknown("probe", f"not sent: {text} was not confirmed", "Answer yes, or add --yes")
        )
        return 0.0
    spent = 0.0
    out = _probe_dir(run_dir)
    for ep in targets:
        spent += await probe(
            section,
            ep,
            job,
            out,
            prices_file=opts.prices,
            price_per_image=opts.price_per_image,
            timeout=max(opts.timeout, 120.0),
        )
    return spent


def _probe_dir(run_dir: Path) -> Path:
    return run_dir / f"doctor-probe-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def run_diagnose(opts: DoctorOptions, confirm: Callable[[str], bool] | None = None) -> Diagnosis:
    return asyncio.run(diagnose(opts, confirm))
