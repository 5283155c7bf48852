"""The pilot's session: ``run_pilot`` samples the job file, runs every setting as one
resumable run directory, scores it, prints the table and names the choice (``apply.py``
runs the batch with it)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.config import RunConfig
from batchgen.errors import UsageError
from batchgen.jobs import iter_jobs
from batchgen.jobs.validate import validate_file
from batchgen.pilot.figures import pilot_figures
from batchgen.pilot.plan import JOBS_FILE, PILOT_FILE, PilotPlan, no_edits, save_result
from batchgen.pilot.sample import draw, sample_size
from batchgen.pilot.settings import Setting, default_ladder, parse_try
from batchgen.pilot.text import table_lines, verdict_lines
from batchgen.session.observer import Observer, Silent
from batchgen.session.outcome import EXIT_OK, EXIT_STOPPED
from batchgen.session.prepare import JobFileProblems
from batchgen.session.resume import resume_run
from batchgen.session.scoring import score_directory
from batchgen.session.start import default_run_dir, start_run

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
    observer = observer or Silent()
    say = say or (lambda _t: None)
    target = Path(run_dir) if run_dir is not None else default_pilot_dir(job_file)
    run_flags = _run_flags(flags)
    score_flags = _score_flags(flags, run_flags)
    pilot_marks(flags)  # a bad --bar, --target or --confidence is refused before any file
    if (target / PILOT_FILE).is_file():
        plan = PilotPlan.load(target)
        _same_pilot(plan, Path(job_file), flags, target)
        plan = _resumed_marks(plan, flags, target, say)
        say(f"pilot {target}: resuming ({len(plan.settings)} settings × {len(plan.sample)} jobs)")
        if (target / "run.json").is_file():
            outcome = resume_run(
                target, run_flags, observer=observer, argv=argv, handle_signals=handle_signals
            )
        else:  # killed before the run directory was made: nothing was sent
            outcome = start_run(
                str(target / JOBS_FILE),
                RunConfig.build(run_flags),
                run_dir=target,
                observer=observer,
                argv=argv,
                handle_signals=handle_signals,
            )
    else:
        if (target / "run.json").is_file():
            raise UsageError(f"{target} holds a run that is not a pilot: choose another --run-dir")
        cfg = RunConfig.build(run_flags)
        plan = _make_plan(Path(job_file), flags, cfg, target, say)

        try:
            outcome = start_run(
                str(target / JOBS_FILE),
                cfg,
                run_dir=target,
                observer=observer,
                argv=argv,
                handle_signals=handle_signals,
            )
        except JobFileProblems as exc:
            raise _mapped_problems(exc, plan, target) from None
    if outcome.exit_code == EXIT_STOPPED:
        result = getattr(outcome, "result", None)
        budget = getattr(getattr(result, "stop_reason", None), "value", None) == "budget"
        say(
            f"the pilot stopped before every setting ran; finish it: batchgen pilot {job_file} "
            f"--run-dir {target}" + (" --max-cost <higher>" if budget else "")
        )
        return PilotOutcome(target, EXIT_STOPPED, None, plan)
    # the judge's threshold is the plan's bar (a resume without --bar keeps the pilot's)
    return _score_and_choose(target, plan, {**score_flags, "threshold": plan.bar}, say)


def _score_and_choose(
    target: Path, plan: PilotPlan, score_flags: dict[str, Any], say: Say
) -> PilotOutcome:
    def tell(text: str, style: str | None = None) -> None:
        say(text)

    spec, scored = score_directory(target, score_flags, say=tell)
    figures = pilot_figures(target, plan, spec.id)
    result = {
        **figures.as_dict(),
        "scorer": spec.id,
        "bar": plan.bar,
        "target": plan.target,
        "confidence": plan.confidence,
    }
    save_result(target, result)
    for line in table_lines(result, plan) + verdict_lines(result, plan):
        say(line)
    if scored.stop_reason is not None:
        say(
            f"scoring stopped ({scored.stop_reason.value}): {scored.stop_message}; the table "
            f"reads the images scored so far — run the pilot again to score the rest"
        )
        return PilotOutcome(target, EXIT_STOPPED, result, plan)
    return PilotOutcome(target, EXIT_OK, result, plan)


def _same_pilot(plan: PilotPlan, job_file: Path, flags: Mapping[str, Any], target: Path) -> None:
    """Resuming: the command names the same job file and settings as the pilot there."""
    if job_file.resolve() != Path(plan.job_file):
        msg = (
            f"{target} is a pilot of {plan.job_file}, not {job_file}: resume it with that "
            "file, or choose another --run-dir"
        )
        raise UsageError(msg)
    tried = flags.get("try_")
    if tried and [s.label for s in parse_try(list(tried))] != [s["label"] for s in plan.settings]:
        names = "; ".join(s["label"] for s in plan.settings)
        msg = (
            f"{target} is a pilot of other settings ({names}): resume it without --try, "
            "or choose another --run-dir"
        )
        raise UsageError(msg)


def pilot_marks(
    flags: Mapping[str, Any],
    defaults: tuple[float, float, float] = (DEFAULT_BAR, DEFAULT_TARGET, DEFAULT_CONFIDENCE),
) -> tuple[float, float, float]:
    """(--bar, --target, --confidence), each its default (``defaults``: a resumed pilot's
    are its plan's) only when not given: a given 0 is a value (--bar 0: every image passes)
    or refused (--target 0), never the default."""

    def given(name: str, default: float) -> float:
        value = flags.get(name)
        return default if value is None else float(value)

    bar = given("bar", defaults[0])
    target_rate = given("target", defaults[1])
    confidence = given("confidence", defaults[2])
    if not math.isfinite(bar):
        raise UsageError(f"--bar {bar}: give the score an image must reach, e.g. --bar 7")
    if not 0 < target_rate <= 1:
        raise UsageError(f"--target {target_rate:g}: a share in (0, 1], e.g. --target 0.9")
    if not 0.5 <= confidence < 1:
        raise UsageError(f"--confidence {confidence:g}: in [0.5, 1), e.g. --confidence 0.8")
    return bar, target_rate, confidence


def _resumed_marks(plan: PilotPlan, flags: Mapping[str, Any], target: Path, say: Say) -> PilotPlan:
    """A resumed pilot keeps the bar, target and confidence of its plan; one given anew
    replaces the plan's (saved: later resumes keep it) and is said. The table is read again
    from the log and the scores, so nothing is sent again for it."""
    old = (plan.bar, plan.target, plan.confidence)
    new = pilot_marks(flags, old)
    if new == old:
        return plan
    changed = [
        f"--{name} {n:g} replaces the pilot's {name} {o:g}"
        for name, o, n in zip(("bar", "target", "confidence"), old, new, strict=True)
        if n != o
    ]
    plan = dataclasses.replace(plan, bar=new[0], target=new[1], confidence=new[2])
    plan.save(target)
    say(f"pilot {target}: " + "; ".join(changed) + " (the table and the choice read the new)")
    return plan


def _run_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in flags.items() if k not in PILOT_OPTIONS}
    return out


def _score_flags(flags: Mapping[str, Any], run_flags: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(run_flags)
    if not out.get("judge") and not out.get("scorer"):
        if (flags.get("provider") or "openai") != "sim":
            msg = (
                "say how to score the pilot: --judge MODEL (a vision chat model, e.g. "
                "gpt-4o-mini) or --scorer clip"
            )
            raise UsageError(msg)
        out["judge"] = SIM_JUDGE
    return out


def _make_plan(
    job_file: Path, flags: Mapping[str, Any], cfg: RunConfig, target: Path, say: Say
) -> PilotPlan:
    defaults = dict(cfg.job_defaults)
    light: list[_Light] = []
    checked = validate_file(
        job_file,
        defaults,
        on_job=lambda j: (
            light.append(_Light(j.id, j.line, j.vars, j.n))
            if not j.inputs
            else no_edits(job_file, j.line)
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
    bar, target_rate, confidence = pilot_marks(flags)
    plan = PilotPlan(
        job_file=str(job_file.resolve()),
        job_sha256=checked.sha256,
        jobs_total=len(light),
        images_total=checked.images,
        seed=seed,
        sample=[{"id": j.id, "line": j.line, "vars": j.vars} for j in picked],
        settings=[{"label": s.label, "slug": s.slug, "values": s.values} for s in settings],
        pilot_jobs=pilot_jobs,
        bar=bar,
        target=target_rate,
        confidence=confidence,
        defaults={k: v for k, v in defaults.items() if v is not None},
    )
    plan.save(target)
    say(
        f"pilot: {len(picked)} of {len(light):,} jobs (seed {seed}) × {len(settings)} settings "
        f"= {len(pilot_jobs)} requests"
    )
    say(
        "sample: "
        + ", ".join(
            j.id + (f" ({', '.join(f'{k}={v}' for k, v in j.vars.items())})" if j.vars else "")
            for j in picked
        )
    )
    say("settings: " + "; ".join(s.label for s in settings))
    return plan


def _mapped_problems(exc: Any, plan: PilotPlan, target: Path) -> UsageError:
    """Problems of the pilot's own job file (a size the model refuses under a setting, a
    field it does not take) named by the user's job file, line and setting; the pilot's
    files removed so the next try starts afresh. Nothing was sent."""

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
        lines.append(
            f"{plan.job_file}:{job['line']}: under --try {setting['label']}: " + text[m.end() :]
        )
    lines.append("choose settings every sampled job can take (--try), or fix those jobs;")
    (target / PILOT_FILE).unlink(missing_ok=True)
    (target / JOBS_FILE).unlink(missing_ok=True)
    return JobFileProblems(lines)


def _settings(flags: Mapping[str, Any], cfg: RunConfig) -> list[Setting]:
    tried = flags.get("try_")
    if tried:
        return parse_try(list(tried))
    return default_ladder(cfg.provider or "openai")
