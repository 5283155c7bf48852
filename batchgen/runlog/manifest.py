"""Checking run.json when it is read: a hand-edited or damaged manifest must stop a command
with a message naming the key, never run with nonsense (concurrency 0 takes no job and
reports "every job succeeded"; a negative rpm never sends).

``problems(doc)`` lists every problem as ``key.path: what it must be (found ...)``; RunDir.load
raises on the first few.

:class:`Manifest` is run.json typed, the one type every reader uses: ``RunDir.manifest()``
(checked) and :func:`read_manifest` (tolerant, for the report).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
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


# ---- the typed manifest -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One session of run.json (``sessions[i]``)."""

    session: int
    started_at: float | None
    ended_at: float | None
    how: str | None  # the ending (rundir.ENDINGS); None while it runs or after a crash
    summary: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None  # the flags given for this session
    command: tuple[str, ...] = ()

    @property
    def autopilot(self) -> dict[str, Any] | None:
        """What the session's limiter learned (one endpoint)."""
        return _sub_dict(self.summary, "autopilot")

    @property
    def endpoints(self) -> dict[str, Any] | None:
        """`run --providers`: per endpoint, what its limiter learned and whether it was out."""
        return _sub_dict(self.summary, "endpoints")

    # ---- a run over a Ray cluster (batchgen.cluster): one driver session, a session a shard
    @property
    def shard(self) -> bool:
        """A shard's session: it ran beside the others of its driver session."""
        return bool(self.settings and "ray_shard" in self.settings)

    @property
    def shards(self) -> tuple[int, ...]:
        """A driver session's shard sessions (none for a session of one process)."""
        cluster = _sub_dict(self.summary, "cluster") or {}
        found = cluster.get("sessions")
        return tuple(int(s) for s in found) if isinstance(found, list) else ()


@dataclass(frozen=True, slots=True)
class Manifest:
    """run.json, typed. Missing keys stay None: a report still reads a manifest written by
    other tools or older versions (``read_manifest``); a session checks it strictly first
    (``RunDir.load(strict=True)``)."""

    jobs: int | None = None
    images: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    sessions: tuple[SessionRecord, ...] = ()
    name: str | None = None
    job_file: str | None = None  # resolved path of the job file (edits' inputs are relative)
    run_id: str | None = None
    job_file_sha256: str | None = None
    created_at: float | None = None

    @property
    def last_session(self) -> SessionRecord | None:
        """The latest session a command started: a ``--ray`` run's driver session, not one of
        its shards (they are numbered after it)."""
        whole = [s for s in self.sessions if not s.shard]
        return whole[-1] if whole else None

    @classmethod
    def from_doc(cls, raw: Any, name: str | None = None) -> Manifest:
        """Tolerant: what is there and makes sense is kept, the rest is None."""
        if not isinstance(raw, dict):
            return cls(name=name)
        given = raw.get("job_file")
        job_file: dict[str, Any] = given if isinstance(given, dict) else {}
        jobs = raw.get("jobs", job_file.get("jobs", job_file.get("job_count")))
        found = raw.get("settings")
        settings: dict[str, Any] = found if isinstance(found, dict) else {}
        return cls(
            jobs=_int_or_none(jobs),
            images=_int_or_none(raw.get("images", job_file.get("images"))),
            settings=dict(settings),
            sessions=_sessions(raw.get("sessions")),
            name=raw.get("name") or name,
            job_file=raw["job_file"] if isinstance(raw.get("job_file"), str) else None,
            run_id=raw.get("run_id") if isinstance(raw.get("run_id"), str) else None,
            job_file_sha256=_str_or_none(raw.get("job_file_sha256")),
            created_at=_epoch(raw.get("created_at")),
        )


def read_manifest(run_dir: Path | str) -> Manifest:
    """``run.json`` of ``run_dir``, tolerant; a missing or damaged one gives an empty manifest
    (the log still reports), because a killed first session may not have written it whole.
    The strict reader for sessions is ``RunDir.load``."""
    path = Path(run_dir) / "run.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Manifest(name=Path(run_dir).name)
    return Manifest.from_doc(raw, Path(run_dir).name)


def _sessions(raw: Any) -> tuple[SessionRecord, ...]:
    out = []
    for i, s in enumerate(raw if isinstance(raw, list) else [], start=1):
        if not isinstance(s, dict):
            continue
        command = s.get("command")
        out.append(
            SessionRecord(
                session=_int_or_none(s.get("session", s.get("id", i))) or i,
                started_at=_epoch(s.get("started_at")),
                ended_at=_epoch(s.get("ended_at")),
                how=s.get("how"),
                summary=s.get("summary") if isinstance(s.get("summary"), dict) else None,
                settings=s.get("settings") if isinstance(s.get("settings"), dict) else None,
                command=tuple(str(c) for c in command) if isinstance(command, list) else (),
            )
        )
    return tuple(out)


def _sub_dict(summary: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    found = summary.get(key) if isinstance(summary, dict) else None
    return dict(found) if isinstance(found, dict) else None


def _epoch(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
