"""Applying a pilot: ``run_apply`` runs the whole job file under the chosen setting as a
normal, resumable run that takes the pilot's images of the sampled jobs instead of paying
for them again (``settings.reuse`` names the pilot; batchgen.library.reuse), carries the
pilot's verdicts with them, and with a regenerate threshold runs the quality loop after."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.config import RunConfig
from batchgen.errors import UsageError
from batchgen.jobs import iter_jobs
from batchgen.jobs.validate import sha256_file
from batchgen.pilot.carry import carry_scores
from batchgen.pilot.plan import PilotPlan, load_result, no_edits
from batchgen.pilot.settings import Setting
from batchgen.quality.store import load_scorer
from batchgen.session.observer import Observer, Silent
from batchgen.session.outcome import EXIT_STOPPED
from batchgen.session.resume import resume_run
from batchgen.session.start import default_run_dir, start_run

if TYPE_CHECKING:
    # a type only: the pilot's own session (run.py) loads the scorer and the report tables
    # (matplotlib), which an apply, started from `batchgen run --from-pilot`, does not need
    from batchgen.pilot.run import Say


def chosen_setting(pilot_dir: Path, plan: PilotPlan, pick: str | None) -> Setting:
    """The pilot's choice, or ``pick`` (a setting's label, slug or 1-based row number)."""
    result = load_result(pilot_dir)
    if pick:
        for i, s in enumerate(plan.settings, 1):
            if pick in (s["label"], s["slug"], str(i)):
                return Setting(dict(s["values"]))
        names = "; ".join(f"{i}: {s['label']}" for i, s in enumerate(plan.settings, 1))
        raise UsageError(f"--setting {pick!r} is none of the pilot's settings ({names})")
    if result is None:
        msg = (
            f"{pilot_dir} has no result yet: finish the pilot (batchgen pilot "
            f"{plan.job_file} --run-dir {pilot_dir})"
        )
        raise UsageError(msg)
    label = result.get("chosen")
    if not label:
        msg = (
            f"the pilot chose no setting ({result.get('reason')}); pick one yourself: "
            "--setting LABEL (or its row number in the table)"
        )
        raise UsageError(msg)
    for s in plan.settings:
        if s["label"] == label:
            return Setting(dict(s["values"]))
    raise UsageError(f"{pilot_dir}: the chosen setting {label!r} is not in pilot.json")


def apply_job_file(job_file: Path, plan: PilotPlan, setting: Setting, out: Path) -> int:
    """Every job of the file under the setting, ids kept, into ``out`` (JSONL): the
    sampled jobs' bodies equal the pilot's, so their fingerprints find its images."""

    count = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for job in iter_jobs(job_file, plan.defaults):
            if job.inputs:
                no_edits(job_file, job.line)
            fh.write(json.dumps({"id": job.id, **setting.apply(job.body)}, ensure_ascii=False))
            fh.write("\n")
            count += 1
    return count


def run_apply(
    job_file: str | Path,
    pilot_dir: str | Path,
    flags: Mapping[str, Any],
    *,
    run_dir: str | Path | None = None,
    observer: Observer | None = None,
    say: Say | None = None,
    argv: Sequence[str] = (),
    regenerate: Any = None,  # batchgen.session.regenerate.Regenerate
    pick: str | None = None,
    handle_signals: bool = True,
) -> Any:
    """A new run of the whole job file under the pilot's setting (an Outcome)."""
    observer = observer or Silent()
    say = say or (lambda _t: None)
    pdir = Path(pilot_dir)
    plan = PilotPlan.load(pdir)
    setting = chosen_setting(pdir, plan, pick)
    source = Path(job_file)
    if sha256_file(source) != plan.job_sha256:
        say(
            f"note: {source} changed since the pilot: only jobs whose request is unchanged "
            "take the pilot's images"
        )
    target = Path(run_dir) if run_dir is not None else default_run_dir(source)
    if (target / "run.json").exists():
        raise UsageError(f"{target} already holds a run: resume it (batchgen resume {target})")
    jobs_file = target / "jobs.jsonl"
    apply_job_file(source, plan, setting, jobs_file)
    given = {k: v for k, v in flags.items() if k not in ("model", "size", "quality", "n")}
    reuse = dict(given.get("reuse") or {})
    sources = [{"kind": "run", "path": str(pdir.resolve())}, *reuse.get("sources", [])]
    given["reuse"] = {"sources": sources, "bar": reuse.get("bar")}
    say(
        f"applying the pilot's setting {setting.label} to {source}; the pilot's "
        f"{len(plan.sample)} sampled jobs take its images"
    )
    outcome = start_run(
        str(jobs_file),
        RunConfig.build(given),
        run_dir=target,
        observer=observer,
        argv=argv,
        handle_signals=handle_signals,
    )
    if regenerate is None or outcome.exit_code == EXIT_STOPPED:
        return outcome

    carried = carry_scores(pdir, target)
    if carried:
        say(f"{carried} verdict(s) of the pilot's judge carried over with its images")
    regen_flags = {k: v for k, v in given.items() if k != "reuse"}
    if not regen_flags.get("judge") and not regen_flags.get("scorer"):
        regen_flags.update(_pilot_scorer(pdir))
    return resume_run(
        target,
        regen_flags,
        observer=observer,
        argv=argv,
        regenerate=regenerate,
        handle_signals=handle_signals,
    )


def _pilot_scorer(pilot_dir: Path) -> dict[str, Any]:
    """The pilot's scorer as flags (the quality loop of the apply scores alike)."""
    saved = load_scorer(pilot_dir) or {}
    if saved.get("kind") == "clip":
        return {"scorer": "clip", "clip_model": saved.get("model")}
    if saved.get("model"):
        return {"judge": saved["model"], "detail": saved.get("detail")}
    return {}
