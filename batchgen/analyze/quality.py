"""The report's quality section: score distribution, weakest images, score by setting beside
cost per image, and whether a cheaper setting scores as well as a dearer one.

Scores are those of the scorer of the last ``batchgen score`` (RUN_DIR/scorer.json), one per
image (the latest verdict). Score by setting joins each scored image to its log row (the
model, quality and size it was made with); cost per image is the log's: the ok rows' cost
divided by their images, per model × quality × size (what an image costs to make, scoring not
included; scoring is shown on its own line).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from batchgen.analyze.model import CheaperSetting, Quality, ScoreBucket, SettingScore, WeakImage
from batchgen.quality.store import load_scorer, read_scores
from batchgen.runlog.reader import read_log

MARGIN = 0.5  # a cheaper setting whose mean score is within this of a dearer one "scores as well"
MIN_IMAGES = 3  # a setting needs this many scored images before it is compared
WEAKEST_SHOWN = 12


def _setting_of_images(
    run_dir: Path,
) -> tuple[dict[str, tuple[Any, ...]], dict[tuple, list[float]]]:
    """image path → (model, quality, size, prompt); (model, quality, size) → [cost, images]."""

    t = read_log(
        run_dir,
        ["status", "image_paths", "model", "quality", "size", "prompt", "cost_usd", "image_count"],
    )
    by_path: dict[str, tuple[Any, ...]] = {}
    costs: dict[tuple, list[float]] = {}
    for r in t.to_pylist():
        if r["status"] != "ok":
            continue
        key = (r["model"], r["quality"], r["size"])
        for p in r["image_paths"] or []:
            by_path[p] = (*key, r["prompt"])
        c = costs.setdefault(key, [0.0, 0])
        if r["cost_usd"] is not None:
            c[0] += r["cost_usd"]
            c[1] += r["image_count"] or 0
    return by_path, costs


def quality_figures(run_dir: Path | str) -> Quality | None:
    """The quality section of the scores of the last scorer; None when never scored."""
    run_dir = Path(run_dir)
    scorer = load_scorer(run_dir)
    if scorer is None:
        return None
    sid = scorer.get("id")
    threshold = float(scorer.get("threshold") or 6.0)
    every = read_scores(run_dir, latest=False)
    rows = read_scores(run_dir, sid).to_pylist()
    ok = [r for r in rows if r["status"] == "ok" and r["score"] is not None]
    by_path, costs = _setting_of_images(run_dir)
    scores = [r["score"] for r in ok]
    best: dict[str, dict[str, Any]] = {}
    for r in ok:
        cur = best.get(r["job_id"])
        if (
            cur is None
            or r["score"] > cur["score"]
            or (r["score"] == cur["score"] and (r["round"] or 1) < (cur["round"] or 1))
        ):
            best[r["job_id"]] = r
    best_paths = {r["image_path"] for r in best.values()}
    regenerated = {r["job_id"] for r in ok if (r["round"] or 1) > 1}
    distribution = tuple(
        ScoreBucket(score=s, images=sum(1 for x in scores if min(10, max(1, int(x))) == s))
        for s in range(1, 11)
    )
    weakest = sorted(ok, key=lambda r: (r["score"], r["image_path"]))[:WEAKEST_SHOWN]
    all_cost = [c for c in every["cost_usd"].to_pylist() if c is not None]
    all_attempts = [a for a in every["attempts"].to_pylist() if a is not None]
    settings = by_setting(ok, by_path, costs)
    return Quality(
        scorer=sid,
        kind=scorer.get("kind"),
        threshold=threshold,
        images_scored=len(ok),
        images_not_scored=sum(1 for r in rows if r["status"] != "ok"),
        jobs_scored=len(best),
        mean=statistics.fmean(scores) if scores else None,
        median=statistics.median(scores) if scores else None,
        images_below_threshold=sum(1 for s in scores if s < threshold),
        jobs_below_threshold=sum(1 for r in best.values() if r["score"] < threshold),
        jobs_regenerated=len(regenerated),
        jobs_best_from_regeneration=sum(1 for r in best.values() if (r["round"] or 1) > 1),
        rounds=max((r["round"] or 1 for r in ok), default=1) - 1,
        distribution=distribution,
        weakest=tuple(
            WeakImage(
                job_id=r["job_id"],
                image_path=r["image_path"],
                score=r["score"],
                defects=tuple(r["defects"] or ()),
                reasons=r["reasons"] or "",
                round=r["round"] or 1,
                best=r["image_path"] in best_paths,
                prompt=(by_path.get(r["image_path"]) or (None,) * 4)[3],
            )
            for r in weakest
        ),
        best_images={j: r["image_path"] for j, r in sorted(best.items())},
        scoring_cost_usd=sum(all_cost),
        scoring_requests=sum(all_attempts),
        scoring_cost_per_image_usd=(sum(all_cost) / len(every)) if len(every) else None,
        by_setting=settings,
        cheaper_settings=cheaper_settings(settings),
    )


def by_setting(
    ok: list[dict[str, Any]], by_path: dict[str, tuple[Any, ...]], costs: dict[tuple, list[float]]
) -> tuple[SettingScore, ...]:
    groups: dict[tuple, list[float]] = {}
    for r in ok:
        found = by_path.get(r["image_path"])
        if found is None:
            continue
        groups.setdefault(found[:3], []).append(r["score"])
    out: list[SettingScore] = []
    for (model, quality, size), scores in sorted(
        groups.items(), key=lambda kv: tuple(map(str, kv[0]))
    ):
        cost, images = costs.get((model, quality, size), [0.0, 0])
        out.append(
            SettingScore(
                model=model,
                quality=quality,
                size=size,
                images_scored=len(scores),
                mean_score=statistics.fmean(scores),
                images=int(images),
                cost_usd=cost,
                cost_per_image_usd=cost / images if images else None,
            )
        )
    return tuple(out)


def _label(g: SettingScore, others: list[SettingScore]) -> str:
    same_model = all(o.model == g.model for o in others)
    return f"quality {g.quality}" if same_model else f"{g.model} {g.quality}"


def _summary(g: SettingScore) -> dict[str, Any]:
    """A setting as a cheaper-setting finding shows it (the free-form ``cheaper`` and
    ``dearer`` of the JSON document)."""
    return {
        "model": g.model,
        "quality": g.quality,
        "size": g.size,
        "mean_score": g.mean_score,
        "cost_per_image_usd": g.cost_per_image_usd,
        "images_scored": g.images_scored,
    }


def cheaper_settings(
    groups: tuple[SettingScore, ...], margin: float = MARGIN
) -> tuple[CheaperSetting, ...]:
    """For each dearer setting, the cheapest one of the same size whose mean score is within
    ``margin`` of it (or above), on at least MIN_IMAGES scored images each."""
    # (setting, its cost per image): only settings with a cost and enough scored images
    usable = [
        (g, g.cost_per_image_usd)
        for g in groups
        if g.images_scored >= MIN_IMAGES and g.cost_per_image_usd is not None
    ]
    out: list[CheaperSetting] = []
    for dear, dear_cost in usable:
        alternatives = [
            (g, cost)
            for g, cost in usable
            if g is not dear
            and g.size == dear.size
            and cost < dear_cost
            and g.mean_score >= dear.mean_score - margin
        ]
        if not alternatives:
            continue
        cheap, cheap_cost = min(alternatives, key=lambda gc: gc[1])
        saving = dear_cost - cheap_cost
        pair = [cheap, dear]
        message = (
            f"{_label(cheap, pair)} averaged {cheap.mean_score:.1f} at "
            f"${cheap_cost:.4f}/image, {_label(dear, pair)} "
            f"{dear.mean_score:.1f} at ${dear_cost:.4f} ({dear.size}): "
            + (
                f"within {margin:g} points"
                if cheap.mean_score < dear.mean_score
                else "as good or better"
            )
            + f", {_label(cheap, pair)} would have saved "
            f"${saving:.4f} per image (${saving * dear.images:.2f} on this run's "
            f"{dear.images} {_label(dear, pair)} images)"
        )
        out.append(
            CheaperSetting(
                cheaper=_summary(cheap),
                dearer=_summary(dear),
                margin=margin,
                saving_per_image_usd=saving,
                message=message,
            )
        )
    return tuple(out)
