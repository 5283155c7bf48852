"""Does the model accept this request? Checked by ``plan`` and by ``run`` before sending,
so a batch does not pay for a 400 that the table already predicts.

The facts (sizes, qualities, n, prompt limits, refused parameters) are data in
``data/prices.toml`` under ``[constraints.*]``; a model without constraints (an aggregator's,
or one missing from the table) is only checked for a sane ``n``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from batchgen.jobs.model import Job
from batchgen.money.memo import remember
from batchgen.money.table import AUTO, Constraints, CustomSizes, PriceTable, parse_size


def check_job(models_table: PriceTable, job: Job) -> list[str]:
    """Messages (without FILE:LINE) for everything the job's model would refuse."""
    body = job.body
    model = body.get("model")
    if not model:
        return [
            'no "model": set it in the job or pass --model '
            "(the API would silently fall back to dall-e-2)"
        ]
    n, size, quality = body.get("n"), job.size, job.quality
    key = (id(models_table), model, n, size, quality, type(n), type(size), type(quality))
    try:
        checked = _CHECKED.get(key)
    except TypeError:  # an unhashable value (a Python caller's job): checked, not kept
        checked = _check_setting(models_table, str(model), n, size, quality)
    if checked is None or checked.table is not models_table:
        checked = remember(
            _CHECKED, key, _check_setting(models_table, str(model), n, size, quality)
        )
    limits = checked.limits
    if limits is None:
        # no constraints: the job reader already checked n's type and 1–10; nothing more
        return []
    problems = list(checked.problems)
    prompt = body.get("prompt")
    most = limits.max_prompt_chars
    if most is not None and isinstance(prompt, str) and len(prompt) > most:
        problems += _check_prompt(prompt, str(model), limits)
    if not checked.rejected.isdisjoint(body):
        problems += _check_params(body, str(model), limits)
    return problems


class _Checked(NamedTuple):
    """One model × n × size × quality, checked: a job file has a handful of these. A
    NamedTuple, not a dataclass: private, and a tenth of the cost to define at start-up."""

    table: PriceTable  # the table it was read from (a reused id() never matches)
    limits: Constraints | None  # None: the model has no constraints
    problems: tuple[str, ...] = ()  # what the model refuses in n, size and quality
    rejected: frozenset[str] = frozenset()  # the parameters it refuses


# (id(table), model, n, size, quality and their types: True == 1, but n=True is refused)
# -> its _Checked
_CHECKED: dict[tuple[Any, ...], _Checked] = {}


def _check_setting(table: PriceTable, model: str, n: Any, size: Any, quality: Any) -> _Checked:
    limits = table.constraints_for(model)
    if limits is None:
        return _Checked(table, None)
    problems = _check_n(n, model, limits)
    problems += _check_size(size, model, limits)
    problems += _check_quality(quality, model, limits)
    return _Checked(table, limits, tuple(problems), frozenset(limits.rejected_params))


def _check_n(n: Any, model: str, limits: Constraints) -> list[str]:
    if n is None:
        return []
    if not isinstance(n, int) or isinstance(n, bool):
        return [f'"n" must be a whole number, got {n!r}']
    if limits.n_min <= n <= limits.n_max:
        return []
    if limits.n_min == limits.n_max:
        return [f'"n" is {n} but {model} takes only n={limits.n_min}: split it into {n} jobs']
    return [f'"n" is {n}, outside {limits.n_min}–{limits.n_max}: split it into several jobs']


def _check_size(size: Any, model: str, limits: Constraints) -> list[str]:
    if size is None or size in limits.sizes:
        return []
    accepted = ", ".join(limits.sizes)
    wh = parse_size(size) if isinstance(size, str) else None
    if wh and limits.custom_sizes:
        reason = _custom_size_problem(wh, limits.custom_sizes)
        if reason is None:
            return []
        return [f'size "{size}" is not accepted by {model}: {reason}']
    if size == AUTO:
        return [f'size "auto" is not accepted by {model}: use one of {accepted}']
    return [f'size "{size}" is not accepted by {model}: use one of {accepted}']


def _custom_size_problem(wh: tuple[int, int], rule: CustomSizes) -> str | None:
    width, height = wh
    if width % rule.multiple or height % rule.multiple:
        return f"width and height must both be multiples of {rule.multiple}"
    if max(wh) > rule.max_long_edge or min(wh) > rule.max_short_edge:
        return (
            f"the long side may be at most {rule.max_long_edge} px and the short side at most "
            f"{rule.max_short_edge} px"
        )
    if max(width, height) > rule.max_ratio * min(width, height):
        return f"the aspect ratio must be within {rule.max_ratio:g}:1"
    return None


def _check_quality(quality: Any, model: str, limits: Constraints) -> list[str]:
    if quality is None or not limits.qualities or quality in limits.qualities:
        return []
    accepted = ", ".join(limits.qualities)
    return [f'quality "{quality}" is not accepted by {model}: use one of {accepted}']


def _check_prompt(prompt: Any, model: str, limits: Constraints) -> list[str]:
    if not isinstance(prompt, str) or limits.max_prompt_chars is None:
        return []
    if len(prompt) <= limits.max_prompt_chars:
        return []
    return [
        f"prompt is {len(prompt):,} characters; {model} takes at most "
        f"{limits.max_prompt_chars:,}: shorten it or use a gpt-image model (32,000)"
    ]


def _check_params(body: dict[str, Any], model: str, limits: Constraints) -> list[str]:
    refused = [key for key in limits.rejected_params if body.get(key) is not None]
    if not refused:
        return []
    names = ", ".join(f'"{key}"' for key in refused)
    return [f"{model} does not take {names}: remove it from the job (or its defaults)"]
