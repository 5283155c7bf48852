"""Recommendations computed from this run's figures: each says what to change, and carries
the numbers it was computed from, so a user can check it (and a test can see it move)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from batchgen.analyze.load import load_manifest
from batchgen.analyze.model import Advice, FailedJob, RunReport
from batchgen.analyze.savings import PriceLookup, cheaper_options
from batchgen.errors import ErrorClass
from batchgen.numbers import plural

RATE_LIMIT_SHARE = 0.03  # above this share of 429s the limiter is set above the account's tier
RPM_HEADROOM = 0.9  # run a little under the accepted rate so bursts do not hit the limit again
TIMEOUT_FACTOR = 1.5
RETRYABLE_SHARE = 0.05  # server/network/invalid answers above this share deserve a word
LISTED_PROMPTS = 20


# a recommendation is the report's Advice: kind, message and the evidence it was computed from
Recommendation = Advice


def recommend(
    fig: RunReport, run_dir: Path, lookup: PriceLookup | None = None
) -> list[Recommendation]:
    """What to change next time, from the run's figures (``fig``: the report so far; its
    ``recommendations`` are not read)."""
    out: list[Recommendation] = []
    out += _stopped(fig)
    out += _rate_limit(fig)
    out += _timeout(fig)
    out += _retryable(fig)
    out += _content_policy(fig)
    out += _bad_request(fig)
    out += _cheaper(fig, lookup)
    out += _quality(fig)
    out += _billed_twice(fig)
    out += _pending(fig, run_dir)
    return out


def _quality(fig: RunReport) -> list[Recommendation]:
    """From the scores: a cheaper setting that scored as well, and weak jobs to regenerate."""
    q = fig.quality
    if not q:
        return []
    out = [
        Recommendation(
            "cheaper_setting_scores_as_well",
            c.message,
            {
                "cheaper": c.cheaper,
                "dearer": c.dearer,
                "margin": c.margin,
                "saving_per_image_usd": c.saving_per_image_usd,
            },
        )
        for c in q.cheaper_settings
    ]
    if q.jobs_below_threshold:
        out.append(
            Recommendation(
                "regenerate_weak",
                f"{plural(q.jobs_below_threshold, 'job')} "
                f"{'has' if q.jobs_below_threshold == 1 else 'have'} no image scoring "
                f"{q.threshold:g} or more: "
                f"batchgen resume {fig.run_dir} --regenerate-below {q.threshold:g}",
                {"jobs": q.jobs_below_threshold, "threshold": q.threshold},
            )
        )
    return out


def setting_text(value: Any) -> str:
    """A quality or size the jobs left to the provider reads as its ``default``."""
    return "default" if value in (None, "", "?") else str(value)


def _setting(fig: RunReport, name: str) -> Any:
    """A run setting: run.json keeps the pool's under ``settings.pool``; flat also accepted."""
    settings = fig.settings
    pool = settings.get("pool")
    return (pool if isinstance(pool, dict) else {}).get(name, settings.get(name))


def _stopped(fig: RunReport) -> list[Recommendation]:
    """auth / quota stop the run, budget leaves jobs unsent: say the class's remedy."""
    if not fig.jobs_pending:
        return []  # a later session finished what the stop left: nothing to act on
    endings = {s.how for s in fig.sessions}
    out = []
    for cls in (ErrorClass.AUTH, ErrorClass.QUOTA, ErrorClass.BUDGET):
        count = fig.errors.get(str(cls), 0) + fig.skipped.get(str(cls), 0)
        if count or f"stopped_{cls}" in endings:
            if cls is ErrorClass.BUDGET and (named := _budget_stop(fig)) is not None:
                flag, remedy = named
                evidence = {"rows": count, "stopped_by": flag}
                out.append(Recommendation(f"stop_{cls}", remedy, evidence))
                continue
            # the remedy names RUN_DIR; this run's is known ("batchgen resume runs/x --max-cost …")
            remedy = cls.remedy.replace("RUN_DIR", str(fig.run_dir))
            out.append(Recommendation(f"stop_{cls}", remedy, {"rows": count}))
    return out


def _budget_stop(fig: RunReport) -> tuple[str, str] | None:
    """The budget that stopped the run and what to do, named: the last session a budget
    stopped recorded its flag and the ending's text (session/record.py's budget_stop), whose
    "To continue" has the run's path and a figure that covers the rest; a run recorded before
    that, by the one budget its settings name. None: not known (the class's remedy, naming
    every budget, is said)."""
    manifest = load_manifest(Path(fig.run_dir))
    for session in reversed(manifest.sessions):
        summary = session.summary or {}
        flag, said = summary.get("stopped_by"), summary.get("stop_message")
        if isinstance(flag, str) and isinstance(said, str) and _CONTINUE in said:
            return flag, f"stopped by {flag}: {said.split(_CONTINUE, 1)[1]}"
    given = [flag for flag, key in _BUDGET_SETTINGS if fig.settings.get(key) is not None]
    if len(given) != 1:
        return None
    flag = given[0]
    if flag == "--max-cost":
        return flag, f"stopped by --max-cost: batchgen resume {fig.run_dir} --max-cost HIGHER"
    return flag, (
        f"stopped by {flag}: raise it (flag or config.toml) and batchgen resume {fig.run_dir}; "
        "`batchgen spend` shows where the month's money went"
    )


_CONTINUE = "To continue: "
# run.json's settings of a run's budgets, by flag
_BUDGET_SETTINGS = (
    ("--max-cost", "max_cost"),
    ("--monthly-budget", "monthly_budget"),
    ("--project-budget", "project_budget"),
)


def _rate_limit(fig: RunReport) -> list[Recommendation]:
    learned = fig.autopilot
    if learned and learned.get("adaptive", True):
        return _learned_limits(fig, learned)
    # --no-adapt (or a run from before the autopilot): judge the fixed --rpm by the 429 share
    share, accepted = fig.rate_limited_share, fig.accepted_rpm
    if share is None or share <= RATE_LIMIT_SHARE or not accepted:
        return []
    rpm = max(1, math.floor(RPM_HEADROOM * accepted))
    current = _setting(fig, "rpm")
    return [
        Recommendation(
            "rpm",
            f"{share:.1%} of attempts were rate limited (429): run with --rpm {rpm} "
            f"({RPM_HEADROOM} × the {accepted:.1f} requests/min the provider accepted"
            + (f"; this run used --rpm {current})" if current else ")"),
            {
                "rate_limited_share": share,
                "accepted_rpm": accepted,
                "suggested_rpm": rpm,
                "current_rpm": current,
                "rate_limited": fig.rate_limited,
            },
        )
    ]


def _learned_limits(fig: RunReport, learned: dict[str, Any]) -> list[Recommendation]:
    """Where the autopilot found the provider's limits, say so and how to start there next
    time. Only when the provider throttled this run: a run bounded by its job count (or by
    random 429s at a rate far below any limit) teaches nothing about the limit."""
    flags: list[str] = []
    said: list[str] = []
    accepted = fig.accepted_rpm or 0.0
    rpm, source = learned.get("rpm"), learned.get("rpm_source")
    stated = source in ("headers", "429 text")
    rate_found = stated or (source == "429" and learned.get("rate_cuts", 0) >= 2)
    if rpm and rate_found and accepted >= AT_LIMIT * rpm:
        flags.append(f"--rpm {math.floor(rpm)}")
        said.append(f"{math.floor(rpm)} requests/min ({_BY[str(source)]})")
    ipm = learned.get("ipm")
    if ipm and learned.get("ipm_source") in ("headers", "429 text", "429"):
        images = fig.images_per_min or 0.0
        if images >= AT_LIMIT * ipm:
            flags.append(f"--ipm {math.floor(ipm)}")
            said.append(f"{math.floor(ipm)} images/min ({_BY[learned['ipm_source']]})")
    conc = learned.get("concurrency")
    if conc and learned.get("concurrency_source") in ("429", "latency"):
        flags.append(f"--concurrency {conc}")
        said.append(f"{plural(conc, 'request')} in flight ({_BY[learned['concurrency_source']]})")
    if not flags:
        return []
    return [
        Recommendation(
            "limits",
            f"the provider sustained {' and '.join(said)}; next time "
            f"`{' '.join(flags)}` starts there at once",
            {"learned": learned, "accepted_rpm": accepted, "flags": " ".join(flags)},
        )
    ]


AT_LIMIT = 0.8  # a run whose accepted rate came this close to a limit was held by it
_BY = {
    "headers": "announced in its x-ratelimit headers",
    "429 text": "stated in its 429s' text",
    "429": "found from its 429s",
    "latency": "found from its latency",
    "flag": "your flag",
}


def _timeout(fig: RunReport) -> list[Recommendation]:
    timeouts = fig.errors.get(str(ErrorClass.TIMEOUT), 0)
    p99 = fig.latency_s.p99
    if not timeouts or p99 is None:
        return []
    current = _setting(fig, "timeout")
    suggested = math.ceil(TIMEOUT_FACTOR * p99)
    # Successful latencies are cut off at the deadline, so p99 under it says little: go past it.
    if current and suggested <= float(current):
        suggested = math.ceil(TIMEOUT_FACTOR * float(current))
    return [
        Recommendation(
            "timeout",
            f"{plural(timeouts, 'attempt')} timed out: run with --timeout {suggested} "
            f"({TIMEOUT_FACTOR} × the observed p99 of {p99:.1f} s"
            + (f", above the {current} s used)" if current else ")"),
            {
                "timeouts": timeouts,
                "latency_p99_s": p99,
                "suggested_timeout_s": suggested,
                "current_timeout_s": current,
            },
        )
    ]


def _retryable(fig: RunReport) -> list[Recommendation]:
    attempts = fig.attempts
    out = []
    for cls in (ErrorClass.SERVER, ErrorClass.NETWORK, ErrorClass.INVALID_RESPONSE):
        n = fig.errors.get(str(cls), 0)
        if attempts and n / attempts > RETRYABLE_SHARE:
            out.append(
                Recommendation(
                    str(cls),
                    f"{n / attempts:.1%} of attempts failed as {cls}: {cls.remedy}",
                    {"errors": n, "attempts": attempts, "share": n / attempts},
                )
            )
    return out


def _failed_of(fig: RunReport, cls: ErrorClass) -> list[FailedJob]:
    return [j for j in fig.failed_jobs if j.error_class == str(cls)]


def _content_policy(fig: RunReport) -> list[Recommendation]:
    count = fig.jobs_failed_by_class.get(str(ErrorClass.CONTENT_POLICY), 0)
    if not count:
        return []
    listed = _failed_of(fig, ErrorClass.CONTENT_POLICY)[:LISTED_PROMPTS]
    return [
        Recommendation(
            "content_policy",
            f"{plural(count, 'job')} {'was' if count == 1 else 'were'} refused by the safety "
            f"system: {ErrorClass.CONTENT_POLICY.remedy}",
            {
                "jobs": count,
                "prompts": [{"job_id": j.job_id, "prompt": j.prompt} for j in listed],
            },
        )
    ]


def _bad_request(fig: RunReport) -> list[Recommendation]:
    count = fig.jobs_failed_by_class.get(str(ErrorClass.BAD_REQUEST), 0)
    if not count:
        return []
    detail = fig.error_details.get(str(ErrorClass.BAD_REQUEST))
    messages = [m.to_dict() for m in detail.messages] if detail else []
    return [
        Recommendation(
            "bad_request",
            f"{plural(count, 'job')} failed as {'a bad request' if count == 1 else 'bad requests'}"
            f": {ErrorClass.BAD_REQUEST.remedy}",
            {"jobs": count, "messages": messages},
        )
    ]


def _cheaper(fig: RunReport, lookup: PriceLookup | None) -> list[Recommendation]:
    out = []
    for opt in cheaper_options(fig.cost_by_group, lookup)[:3]:
        a, b = opt["from"], opt["to"]
        out.append(
            Recommendation(
                "cheaper",
                f"{plural(a['images'], 'image')} at "
                f"{a['model']}/{setting_text(a['quality'])}/{setting_text(a['size'])} "
                f"(${a['price_usd']:.3f} each): {b['model']} at quality {b['quality']} costs "
                f"${b['price_usd']:.3f}, saving ${b['saving_usd']:.2f} on a run like this",
                opt,
            )
        )
    return out


def _billed_twice(fig: RunReport) -> list[Recommendation]:
    n = fig.possibly_billed_twice
    if not n:
        return []
    return [
        Recommendation(
            "billed_twice",
            f"possibly billed twice: {plural(n, 'request')} {'was' if n == 1 else 'were'} sent "
            "again after one of the same job was lost in flight (a crash, or a forced stop); "
            "the provider's usage page shows whether the lost answers were billed",
            {"jobs": n},
        )
    ]


def _pending(fig: RunReport, run_dir: Path) -> list[Recommendation]:
    n = fig.jobs_pending
    if not n:
        return []
    return [
        Recommendation(
            "pending",
            f"batchgen resume {run_dir} to finish {plural(n, 'pending job')}",
            {"jobs_pending": n, "jobs_total": fig.jobs_total},
        )
    ]
