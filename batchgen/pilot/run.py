"""The pilot's sessions: ``run_pilot`` (sample, run every setting as one resumable run
directory, score, the table and the choice) and ``run_apply`` (the whole job file under the
chosen setting as a normal run that takes the pilot's images of the sampled jobs instead of
paying for them again; with a regenerate threshold, the quality loop after)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.config import RunConfig
from batchgen.errors import UsageError
from batchgen.pilot.plan import JOBS_FILE, PILOT_FILE, PilotPlan, load_result, save_result
from batchgen.pilot.settings import Setting, default_ladder, parse_try
from batchgen.session.observer import Observer, Silent
from batchgen.session.outcome import EXIT_OK, EXIT_STOPPED

Say = Callable[[str], None]
DEFAULT_SAMPLE = "24"
DEFAULT_BAR = 7.0
DEFAULT_TARGET = 0.9
DEFAULT_CONFIDENCE = 0.8
SIM_JUDGE = "gpt-4o-mini"
# what the pilot's own options are named (not a run's flags)
PILOT_OPTIONS = ("sample", "seed", "try_", "bar", "target", "confidence")


@dataclass(frozen=True, slots=True)
class PilotOutcome:
    run_dir: Path
    exit_code: int
    result: dict[str, Any] | None  # pilot-result.json (None: the pilot did not finish)
    plan: PilotPlan | None


@dataclass(frozen=True, slots=True)
class _Light:
    id: str
    line: int
    vars: dict[str, str] | None
    n: int


def default_pilot_dir(job_file: str | Path) -> Path:
    from batchgen.session.start import default_run_dir

    base = default_run_dir(job_file)
    return base.with_name("pilot-" + base.name)


def run_pilot(
    job_file: str | Path,
    flags: Mapping[str, Any],
    *,
    run_dir: str | Path | None = None,
    observer: Observer | None = None,
    say: Say | None = None,
    argv: Sequence[str] = (),
    handle_signals: bool = True,
) -> PilotOutcome:
    """Run (or, when ``run_dir`` already holds this pilot, resume) the pilot. Raises
    UsageError before anything is sent."""
    from batchgen.session.resume import resume_run
    from batchgen.session.start import start_run

    observer = observer or Silent()
    say = say or (lambda _t: None)
    target = Path(run_dir) if run_dir is not None else default_pilot_dir(job_file)
    run_flags = _run_flags(flags)
    score_flags = _score_flags(flags, run_flags)
    if (target / PILOT_FILE).is_file():
        plan = PilotPlan.load(target)
        _same_pilot(plan, Path(job_file), flags, target)
        say(f"pilot {target}: resuming ({len(plan.settings)} settings × {len(plan.sample)} jobs)")
        if (target / "run.json").is_file():
            outcome = resume_run(target, run_flags, observer=observer, argv=argv,
                                 handle_signals=handle_signals)  # fmt: skip
        else:  # killed before the run directory was made: nothing was sent
            outcome = start_run(str(target / JOBS_FILE), RunConfig.build(run_flags),
                                run_dir=target, observer=observer, argv=argv,
                                handle_signals=handle_signals)  # fmt: skip
    else:
        if (target / "run.json").is_file():
            raise UsageError(f"{target} holds a run that is not a pilot: choose another --run-dir")
        cfg = RunConfig.build(run_flags)
        plan = _make_plan(Path(job_file), flags, cfg, target, say)
        from batchgen.session.prepare import JobFileProblems

        try:
            outcome = start_run(str(target / JOBS_FILE), cfg, run_dir=target,
                                observer=observer, argv=argv,
                                handle_signals=handle_signals)  # fmt: skip
        except JobFileProblems as exc:
            raise _mapped_problems(exc, plan, target) from None
    if outcome.exit_code == EXIT_STOPPED:
        result = getattr(outcome, "result", None)
        budget = getattr(getattr(result, "stop_reason", None), "value", None) == "budget"
        say(f"the pilot stopped before every setting ran; finish it: batchgen pilot {job_file} "
            f"--run-dir {target}" + (" --max-cost <higher>" if budget else ""))  # fmt: skip
        return PilotOutcome(target, EXIT_STOPPED, None, plan)
    return _score_and_choose(target, plan, score_flags, say)


def _score_and_choose(
    target: Path, plan: PilotPlan, score_flags: dict[str, Any], say: Say
) -> PilotOutcome:
    from batchgen.pilot.figures import pilot_figures
    from batchgen.pilot.text import table_lines, verdict_lines
    from batchgen.session.scoring import score_directory

    def tell(text: str, style: str | None = None) -> None:
        say(text)

    spec, scored = score_directory(target, score_flags, say=tell)
    figures = pilot_figures(target, plan, spec.id)
    result = {**figures.as_dict(), "scorer": spec.id, "bar": plan.bar, "target": plan.target,
              "confidence": plan.confidence}  # fmt: skip
    save_result(target, result)
    for line in table_lines(result, plan) + verdict_lines(result, plan):
        say(line)
    if scored.stop_reason is not None:
        say(f"scoring stopped ({scored.stop_reason.value}): {scored.stop_message}; the table "
            f"reads the images scored so far — run the pilot again to score the rest")  # fmt: skip
        return PilotOutcome(target, EXIT_STOPPED, result, plan)
    return PilotOutcome(target, EXIT_OK, result, plan)


def _same_pilot(plan: PilotPlan, job_file: Path, flags: Mapping[str, Any], target: Path) -> None:
    """Resuming: the command names the same job file and settings as the pilot there."""
    if job_file.resolve() != Path(plan.job_file):
        msg = (f"{target} is a pilot of {plan.job_file}, not {job_file}: resume it with that "
               "file, or choose another --run-dir")  # fmt: skip
        raise UsageError(msg)
    tried = flags.get("try_")
    if tried and [s.label for s in parse_try(list(tried))] != [s["label"] for s in plan.settings]:
        names = "; ".join(s["label"] for s in plan.settings)
        msg = (f"{target} is a pilot of other settings ({names}): resume it without --try, "
               "or choose another --run-dir")  # fmt: skip
        raise UsageError(msg)


def _run_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in flags.items() if k not in PILOT_OPTIONS}
    return out


def _score_flags(flags: Mapping[str, Any], run_flags: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(run_flags)
    if not out.get("judge") and not out.get("scorer"):
        if (flags.get("provider") or "openai") != "sim":
            msg = ("say how to score the pilot: --judge MODEL (a vision chat model, e.g. "
                   "gpt-4o-mini) or --scorer clip")  # fmt: skip
            raise UsageError(msg)
        out["judge"] = SIM_JUDGE
    out["threshold"] = float(flags.get("bar") or DEFAULT_BAR)
    return out


def _make_plan(
    job_file: Path, flags: Mapping[str, Any], cfg: RunConfig, target: Path, say: Say
) -> PilotPlan:
    from batchgen.jobs import iter_jobs
    from batchgen.jobs.validate import validate_file
    from batchgen.pilot.sample import draw, sample_size
    from batchgen.session.prepare import JobFileProblems

    defaults = dict(cfg.job_defaults)
    light: list[_Light] = []
    checked = validate_file(
        job_file,
        defaults,
        on_job=lambda j: (
            light.append(_Light(j.id, j.line, j.vars, j.n))
            if not j.inputs
            else _no_edits(job_file, j.line)
        ),
    )
    if checked.problems:
        raise JobFileProblems([str(p) for p in checked.problems])
    if not light:
        raise UsageError(f"{job_file}: no jobs to sample")
    settings = _settings(flags, cfg)
    seed = int(flags.get("seed") or 0)
    picked = draw(light, sample_size(flags.get("sample") or DEFAULT_SAMPLE, len(light)), seed)
    wanted = {p.id for p in picked}
    sample_jobs = [j for j in iter_jobs(job_file, defaults) if j.id in wanted]
    target.mkdir(parents=True, exist_ok=True)
    pilot_jobs: dict[str, list[str]] = {}
    with (target / JOBS_FILE).open("w", encoding="utf-8") as out:
        for s in settings:
            for job in sample_jobs:
                pid = f"{job.id}={s.slug}"
                if len(pid) > 128:
                    raise UsageError(f"job id {job.id!r} is too long to tag for a pilot")
                pilot_jobs[pid] = [job.id, s.slug]
                out.write(json.dumps({"id": pid, **s.apply(job.body)}, ensure_ascii=False))
                out.write("\n")
    bar = DEFAULT_BAR if flags.get("bar") is None else float(flags["bar"])
    target_rate = float(flags.get("target") or DEFAULT_TARGET)
    confidence = float(flags.get("confidence") or DEFAULT_CONFIDENCE)
    if not 0 < target_rate <= 1 or not 0.5 <= confidence < 1:
        raise UsageError("--target is a share in (0, 1]; --confidence in [0.5, 1), e.g. 0.8")
    plan = PilotPlan(
        job_file=str(job_file.resolve()), job_sha256=checked.sha256, jobs_total=len(light),
        images_total=checked.images, seed=seed,
        sample=[{"id": j.id, "line": j.line, "vars": j.vars} for j in picked],
        settings=[{"label": s.label, "slug": s.slug, "values": s.values} for s in settings],
        pilot_jobs=pilot_jobs, bar=bar, target=target_rate, confidence=confidence,
        defaults={k: v for k, v in defaults.items() if v is not None},
    )  # fmt: skip
    plan.save(target)
    say(f"pilot: {len(picked)} of {len(light):,} jobs (seed {seed}) × {len(settings)} settings "
        f"= {len(pilot_jobs)} requests")  # fmt: skip
    say("sample: " + ", ".join(
        j.id + (f" ({', '.join(f'{k}={v}' for k, v in j.vars.items())})" if j.vars else "")
        for j in picked))  # fmt: skip
    say("settings: " + "; ".join(s.label for s in settings))
    return plan


def _mapped_problems(exc: Any, plan: PilotPlan, target: Path) -> UsageError:
    """Problems of the pilot's own job file (a size the model refuses under a setting, a
    field it does not take) named by the user's job file, line and setting; the pilot's
    files removed so the next try starts afresh. Nothing was sent."""
    import re

    from batchgen.session.prepare import JobFileProblems

    where = re.compile(re.escape(JOBS_FILE) + r":(\d+): ")
    k = max(1, len(plan.sample))
    lines = []
    for text in exc.lines:
        m = where.search(text)
        if m is None:
            lines.append(text.replace("resume again", "run the pilot again"))
            continue
        i = int(m.group(1)) - 1
        job, setting = plan.sample[i % k], plan.settings[min(i // k, len(plan.settings) - 1)]
        lines.append(f"{plan.job_file}:{job['line']}: under --try {setting['label']}: "
                     + text[m.end():])  # fmt: skip
    lines.append("choose settings every sampled job can take (--try), or fix those jobs")
    (target / PILOT_FILE).unlink(missing_ok=True)
    (target / JOBS_FILE).unlink(missing_ok=True)
    return JobFileProblems(lines)


def _no_edits(job_file: Path, line: int) -> None:
    msg = (f"{job_file}:{line}: an edit (image/mask); the pilot samples generations only — "
           "pilot a file of generations, or compare settings with a spec matrix")  # fmt: skip
    raise UsageError(msg)


def _settings(flags: Mapping[str, Any], cfg: RunConfig) -> list[Setting]:
    tried = flags.get("try_")
    if tried:
        return parse_try(list(tried))
    return default_ladder(cfg.provider or "openai")


# ---- apply: the rest of the job file under the chosen setting ----------------------------
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
        msg = (f"{pilot_dir} has no result yet: finish the pilot (batchgen pilot "
               f"{plan.job_file} --run-dir {pilot_dir})")  # fmt: skip
        raise UsageError(msg)
    label = result.get("chosen")
    if not label:
        msg = (f"the pilot chose no setting ({result.get('reason')}); pick one yourself: "
               "--setting LABEL (or its row number in the table)")  # fmt: skip
        raise UsageError(msg)
    for s in plan.settings:
        if s["label"] == label:
            return Setting(dict(s["values"]))
    raise UsageError(f"{pilot_dir}: the chosen setting {label!r} is not in pilot.json")


def apply_job_file(job_file: Path, plan: PilotPlan, setting: Setting, out: Path) -> int:
    """Every job of the file under the setting, ids kept, into ``out`` (JSONL): the
    sampled jobs' bodies equal the pilot's, so their fingerprints find its images."""
    from batchgen.jobs import iter_jobs

    count = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for job in iter_jobs(job_file, plan.defaults):
            if job.inputs:
                _no_edits(job_file, job.line)
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
    from batchgen.jobs.validate import sha256_file
    from batchgen.session.resume import resume_run
    from batchgen.session.start import default_run_dir, start_run

    observer = observer or Silent()
    say = say or (lambda _t: None)
    pdir = Path(pilot_dir)
    plan = PilotPlan.load(pdir)
    setting = chosen_setting(pdir, plan, pick)
    source = Path(job_file)
    if sha256_file(source) != plan.job_sha256:
        say(f"note: {source} changed since the pilot: only jobs whose request is unchanged "
            "take the pilot's images")  # fmt: skip
    target = Path(run_dir) if run_dir is not None else default_run_dir(source)
    if (target / "run.json").exists():
        raise UsageError(f"{target} already holds a run: resume it (batchgen resume {target})")
    jobs_file = target / "jobs.jsonl"
    apply_job_file(source, plan, setting, jobs_file)
    given = {k: v for k, v in flags.items() if k not in ("model", "size", "quality", "n")}
    reuse = dict(given.get("reuse") or {})
    sources = [{"kind": "run", "path": str(pdir.resolve())}, *reuse.get("sources", [])]
    given["reuse"] = {"sources": sources, "bar": reuse.get("bar")}
    say(f"applying the pilot's setting {setting.label} to {source}; the pilot's "
        f"{len(plan.sample)} sampled jobs take its images")  # fmt: skip
    outcome = start_run(str(jobs_file), RunConfig.build(given), run_dir=target,
                        observer=observer, argv=argv, handle_signals=handle_signals)  # fmt: skip
    if regenerate is None or outcome.exit_code == EXIT_STOPPED:
        return outcome
    from batchgen.pilot.carry import carry_scores

    carried = carry_scores(pdir, target)
    if carried:
        say(f"{carried} verdict(s) of the pilot's judge carried over with its images")
    regen_flags = {k: v for k, v in given.items() if k != "reuse"}
    if not regen_flags.get("judge") and not regen_flags.get("scorer"):
        regen_flags.update(_pilot_scorer(pdir))
    return resume_run(target, regen_flags, observer=observer, argv=argv, regenerate=regenerate,
                      handle_signals=handle_signals)  # fmt: skip


def _pilot_scorer(pilot_dir: Path) -> dict[str, Any]:
    """The pilot's scorer as flags (the quality loop of the apply scores alike)."""
    from batchgen.quality.store import load_scorer

    saved = load_scorer(pilot_dir) or {}
    if saved.get("kind") == "clip":
        return {"scorer": "clip", "clip_model": saved.get("model")}
    if saved.get("model"):
        return {"judge": saved["model"], "detail": saved.get("detail")}
    return {}
