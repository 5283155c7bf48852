"""Checking run.json when it is read: a hand-edited or damaged manifest must stop a command
with a message naming the key, never run with nonsense (concurrency 0 takes no job and
reports "every job succeeded"; a negative rpm never sends).

``problems(doc)`` lists every problem as ``key.path: what it must be (found ...)``; RunDir.load
raises on the first few.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_MISSING = object()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v  # not NaN


Check = tuple[str, Callable[[Any], bool], str, bool]  # key, test, what it must be, required

_TOP: tuple[Check, ...] = (
    ("run_id", lambda v: isinstance(v, str) and bool(v), "a non-empty string", True),
    ("job_file", lambda v: isinstance(v, str) and bool(v), "the job file's path", True),
    ("job_file_sha256", lambda v: isinstance(v, str), "a sha256 hex string", True),
    ("jobs", lambda v: _is_int(v) and v >= 0, "a whole number >= 0", True),
    ("images", lambda v: _is_int(v) and v >= 0, "a whole number >= 0", False),
    ("settings", lambda v: isinstance(v, dict), "an object", True),
    ("sessions", lambda v: isinstance(v, list), "a list", True),
)
_SETTINGS: tuple[Check, ...] = (
    ("defaults", lambda v: v is None or isinstance(v, dict), "an object or null", False),
    ("pool", lambda v: v is None or isinstance(v, dict), "an object or null", False),
    ("base_url", lambda v: v is None or isinstance(v, str), "a URL or null", False),
    ("api_key_env", lambda v: v is None or isinstance(v, str), "a variable name or null", False),
    ("sim", lambda v: v is None or isinstance(v, dict), "an object or null", False),
    ("prices", lambda v: v is None or isinstance(v, str), "a path or null", False),
    ("max_cost", lambda v: v is None or (_is_num(v) and v >= 0), "a number >= 0 or null", False),
    (
        "price_per_image",
        lambda v: v is None or (_is_num(v) and v >= 0),
        "a number >= 0 or null",
        False,
    ),
)
_POOL: tuple[Check, ...] = (
    # null: no cap (the autopilot on main picks the in-flight limit)
    (
        "concurrency",
        lambda v: v is None or (_is_int(v) and v >= 1),
        "a whole number >= 1 or null",
        False,
    ),
    ("rpm", lambda v: v is None or (_is_num(v) and v > 0), "a number > 0 or null", False),
    ("ipm", lambda v: v is None or (_is_num(v) and v > 0), "a number > 0 or null", False),
    ("timeout", lambda v: _is_num(v) and v > 0, "a number of seconds > 0", False),
    ("max_attempts", lambda v: _is_int(v) and v >= 1, "a whole number >= 1", False),
    ("grace", lambda v: _is_num(v) and v >= 0, "a number of seconds >= 0", False),
    ("adaptive", lambda v: isinstance(v, bool), "true or false", False),
    (
        "stall_timeout",
        lambda v: v is None or (_is_num(v) and v > 0),
        "a number of seconds > 0 or null",
        False,
    ),
    (
        "max_pause",
        lambda v: v is None or (_is_num(v) and v > 0),
        "a number of seconds > 0 or null",
        False,
    ),
    ("image_checks", lambda v: isinstance(v, bool), "true or false", False),
)


_RESUME_ONLY = frozenset({"run_id", "job_file", "job_file_sha256"})


def _check(
    doc: dict[str, Any], checks: tuple[Check, ...], prefix: str, strict: bool = True
) -> list[str]:
    out = []
    for key, ok, what, required in checks:
        if not strict and key in _RESUME_ONLY:
            continue
        value = doc.get(key, _MISSING)
        if value is _MISSING:
            if required and strict:
                out.append(f"{prefix}{key}: missing (must be {what})")
            continue
        if not ok(value):
            out.append(f"{prefix}{key}: must be {what} (found {value!r:.60})")
    return out


def problems(doc: Any, endings: frozenset[str] | None, *, strict: bool = True) -> list[str]:
    """Every problem of a manifest. ``strict`` (resume, jobs): what a session needs must be
    there. Not strict (report): only what is present must make sense, so a report still
    reads a manifest written by other tools or older versions."""
    if not isinstance(doc, dict):
        return [f"the top level is a JSON {type(doc).__name__}, not an object"]
    out = _check(doc, _TOP, "", strict)
    settings = doc.get("settings")
    if isinstance(settings, dict):
        out += _check(settings, _SETTINGS, "settings.", strict)
        if isinstance(settings.get("pool"), dict):
            out += _check(settings["pool"], _POOL, "settings.pool.", strict)
    sessions = doc.get("sessions")
    if isinstance(sessions, list):
        seen: set[int] = set()
        for i, rec in enumerate(sessions):
            where = f"sessions[{i}]"
            if not isinstance(rec, dict):
                out.append(f"{where}: must be an object (found {rec!r:.60})")
                continue
            number = rec.get("session")
            if not isinstance(number, int) or not _is_int(number) or number < 1 or number in seen:
                out.append(
                    f"{where}.session: must be a unique whole number >= 1 (found {number!r:.60})"
                )
            else:
                seen.add(number)
            how = rec.get("how")
            if how is not None and endings is not None and how not in endings:
                out.append(
                    f"{where}.how: must be one of {sorted(endings)} or null (found {how!r:.60})"
                )
            if rec.get("settings") is not None and not isinstance(rec.get("settings"), dict):
                out.append(f"{where}.settings: must be an object or null")
    return out
