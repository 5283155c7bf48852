"""The shape and types of a request's fields, and whether an id is safe as a file name.

These checks are about what ``POST /images/generations`` accepts in general, not about one
model's rules; :mod:`batchgen.jobs.validate` runs them on every job and on the defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from batchgen.jobs.formats import did_you_mean, kind_of, nearest, show

# "=" is allowed after the first character: a spec cell's id reads style=studio.product=mug
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._=-]{0,127}")
_STRING_FIELDS = {
    "model": "gpt-image-1",
    "size": "1024x1024",
    "quality": "high",
    "style": "vivid",
    "output_format": "png",
    "background": "transparent",
    "response_format": "b64_json",
    "moderation": "low",
    "user": "user-1234",
    "input_fidelity": "high",
}
_INT_FIELDS = {"n": (1, 10), "output_compression": (0, 100), "partial_images": (0, 3)}
# The request fields of POST /images/generations (reference/openai-images-openapi.json), and
# those only POST /images/edits takes (openai-batch-files-edits-openapi.json)
EDIT_ONLY_FIELDS = frozenset({"image", "images", "mask", "input_fidelity"})
API_FIELDS = frozenset({"prompt", "stream", *_STRING_FIELDS, *_INT_FIELDS, *EDIT_ONLY_FIELDS})
# How close an unknown field must be to a known one to be taken for its typo. Higher than
# did_you_mean's 0.75: other services' own parameters are sent as is, and at 0.75 fal's
# "image_size" and "num_images" would pass for "images"; "modle", "qualty", "sizes" are >= 0.8
_TYPO_CUTOFF = 0.8


@lru_cache(maxsize=256)
def _typo_of(name: str) -> str | None:
    """The API field an unknown field name is a near miss of (a job file repeats its few
    names on every line: difflib runs once per name)."""
    return nearest(name, sorted(API_FIELDS), _TYPO_CUTOFF)


def _int_problem(name: str, value: object, low: int, high: int) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        if low <= value <= high:
            return None
        if value < low:
            return (
                f'"{name}" must be at least {low}, got {value}: write a whole number from {low} '
                f"to {high}"
            )
        fix = "split the job into several jobs" if name == "n" else f"use {low} to {high}"
        return f'"{name}" must be a whole number from {low} to {high}, got {value}: {fix}'
    got = f"got {show(value)} ({kind_of(value)})"
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        fix = f"write {value.strip()} without quotes"
    elif isinstance(value, float) and value.is_integer():
        fix = f"write {int(value)}"
    else:
        fix = f"write a whole number like {max(low, 1)}"
    return f'"{name}" must be a whole number from {low} to {high}, {got}: {fix}'


def check_fields(fields: Mapping[str, Any], *, need_prompt: bool = True) -> list[str]:
    """What is wrong with the shape and types of a request's fields (not model rules)."""
    found: list[str] = []
    if need_prompt:
        prompt = fields.get("prompt")
        if prompt is None:
            found.append(
                f'missing "prompt"{did_you_mean("prompt", fields)}: '
                'every job needs "prompt": "what to draw"'
            )
        elif not isinstance(prompt, str):
            found.append(
                f'"prompt" must be a string, got {show(prompt)} ({kind_of(prompt)}): '
                "put the prompt in double quotes"
            )
        elif not prompt or prompt.isspace():
            found.append('"prompt" is empty: write what to draw, or delete the line')
    # loop over the job's few fields, not over every known name: this runs once per line
    for name, value in fields.items():
        if name in _STRING_FIELDS:
            if not isinstance(value, str) or not value or value.isspace():
                found.append(
                    f'"{name}" must be a non-empty string like "{_STRING_FIELDS[name]}", '
                    f"got {show(value)} ({kind_of(value)}): write it in double quotes"
                )
        elif name in _INT_FIELDS:
            if problem := _int_problem(name, value, *_INT_FIELDS[name]):
                found.append(problem)
        elif name == "stream" and value:
            found.append('streamed answers are not supported: remove "stream"')
        elif name not in API_FIELDS and (known := _typo_of(name)) is not None:
            if known == "prompt" and need_prompt and "prompt" not in fields:
                continue  # said above, as the missing prompt
            why = "would send both it and" if known in fields else "would go without its"
            found.append(
                f'unknown field "{name}": did you mean "{known}"? Rename it: a field batchgen '
                f'does not know is sent as is, and this job {why} "{known}"'
            )
    return found


def check_defaults(defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """The defaults that apply (None means "not given"); raises ValueError on a bad one."""
    given = {k: v for k, v in (defaults or {}).items() if v is not None}
    if problems := check_fields(given, need_prompt=False):
        msg = f"bad default ({problems[0]}): fix the command-line flag or its config value"
        raise ValueError(msg)
    return given


# a Windows device name followed by a dot ("aux.v2", "NUL.x"): Windows opens the device for
# any file name starting so ("NUL.txt" is NUL), and an image written there is gone
_DEVICE_ID = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])\.", re.IGNORECASE)


def unsafe_id_problem(job_id: str) -> str | None:
    if _SAFE_ID.fullmatch(job_id):
        if device := _DEVICE_ID.match(job_id):
            stem = device.group(1)
            return (
                f"id {show(job_id)} starts with the Windows device name {stem.upper()} and "
                "a dot: on Windows its image files would open the device and be lost; "
                f'use another id (e.g. "{stem}-{job_id[len(stem) + 1 :]}"; in a spec, '
                "another id: prefix)"
            )
        return None
    if not job_id:
        why = "it is empty"
    elif len(job_id) > 128:
        why = f"it is {len(job_id)} characters long"
    elif job_id.startswith((".", "=")):
        why = f'it starts with "{job_id[0]}"'
    else:
        bad = sorted({c for c in job_id if not _SAFE_ID.fullmatch("a" + c)})
        why = "it contains " + ", ".join(show(c) for c in bad)
    return (
        f"id {show(job_id)} is not safe as a file name ({why}): use 1 to 128 letters, digits, "
        '".", "_", "-" or "=", not starting with "." or "="'
    )
