"""A job's model name that is most likely a typo of a priced one ("gpt-image-l" for
"gpt-image-1").

Model names are free-form (an aggregator's or a local server's own), so an unknown name is
never refused as such: the session refuses a near miss only where the endpoint serves OpenAI's
models (batchgen.session.builder), and warns elsewhere; `plan` warns. The lines are found by a
second pass over the file, taken only when some model is a near miss.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from batchgen.jobs.formats import Problem, detect_format, nearest
from batchgen.jobs.model import Job
from batchgen.jobs.validate import iter_jobs

# "gpt-image-l"/"gpt-image-1" is 0.91, "dall-e3"/"dall-e-3" 0.93; names of other families
# ("sdxl-turbo", "stable-diffusion-3") stay far below
MODEL_CUTOFF = 0.85
# characters that look alike in many fonts: "gpt-image-l" is as close to "gpt-image-2" as to
# "gpt-image-1" by difflib's ratio, but only one of them is what was meant
_LOOKALIKE = str.maketrans({"l": "1", "I": "1", "|": "1", "O": "0", "o": "0"})


# a name that differs from a priced one only in its version ("gpt-image-3", "dall-e-4",
# "gpt-image-1.5-mini") may be a model released after the price table: not a typo
_VERSION = re.compile(r"[0-9.]")


def _nearest_model(model: str, choices: list[str]) -> str | None:
    shape = model.translate(_LOOKALIKE)
    same = [c for c in choices if c.translate(_LOOKALIKE) == shape]
    if same:
        return same[0]
    close = nearest(model, choices, MODEL_CUTOFF)
    if close is not None and _VERSION.sub("", close) == _VERSION.sub("", model):
        return None
    return close


def near_misses(models: Iterable[str], known: Collection[str]) -> dict[str, str]:
    """{model: the known model it is most likely a typo of}, for the models not in ``known``."""
    choices = sorted(known)
    found: dict[str, str] = {}
    for model in models:
        if model not in known and (close := _nearest_model(model, choices)) is not None:
            found[model] = close
    return found


def first_jobs(
    path: str | Path, defaults: Mapping[str, Any] | None, models: Collection[str]
) -> dict[str, Job]:
    """The first job of each of ``models`` in the (validated) job file."""
    found: dict[str, Job] = {}
    for job in iter_jobs(path, defaults):
        model = job.model
        if model is not None and model in models and model not in found:
            found[model] = job
            if len(found) == len(models):
                break
    return found


def model_typos(
    path: str | Path,
    defaults: Mapping[str, Any] | None,
    models: Iterable[str],
    known: Collection[str],
    *,
    refused: bool | None,
) -> list[Problem]:
    """One FILE:LINE message per model of ``models`` that is a near miss of ``known`` (at its
    first job). ``refused``: the endpoint serves OpenAI's models and would answer 400; False:
    it may serve the name; None: not known yet (`plan`)."""
    misses = near_misses(models, known)
    if not misses:
        return []
    jobs = first_jobs(path, defaults, misses)
    spec = detect_format(Path(path), None) == "spec"  # a spec's jobs have no line: name the job
    where = str(path)
    found = []
    for model, close in sorted(misses.items()):
        if refused:
            msg = (
                f'model "{model}" is not an OpenAI model (the API would answer 400): did you '
                f'mean "{close}"? Fix the name; a model newer than the price table goes in a '
                "--prices FILE"
            )
        elif refused is None:
            msg = (
                f'model "{model}" has no price and is one typo from "{close}": did you mean '
                f'"{close}"? OpenAI\'s API and the simulator would answer 400 (a run there stops '
                "before sending); another endpoint gets it as written"
            )
        else:
            msg = (
                f'model "{model}" has no price and is one typo from "{close}": did you mean '
                f'"{close}"? It is sent as written (this endpoint may serve that name)'
            )
        job = jobs.get(model)
        if job is not None and spec:
            msg = f"job {job.id} (#{job.line}): {msg}"
        found.append(Problem(where, 0 if job is None or spec else job.line, msg))
    return found
