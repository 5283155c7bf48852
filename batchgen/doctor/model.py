"""What `batchgen doctor` found: one :class:`Check` per line (✓ / ✗ / ?), grouped by what it is
about (an endpoint, the job file, the run directory), and the verdict (exit 0 when a run would
start, 2 when it would not). Plain data: the checks fill it, the renderers read it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from batchgen.errors import ErrorClass


class Status(enum.StrEnum):
    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"

    @property
    def mark(self) -> str:
        return {"ok": "✓", "fail": "✗", "unknown": "?"}[self.value]


@dataclass(frozen=True, slots=True)
class Check:
    """One line: what was checked, how it went, what was seen, and for ✗ the fix."""

    name: str
    status: Status
    seen: str
    fix: str = ""
    cause: str = ""  # the error class (batchgen.errors.ErrorClass) a ✗ maps to, if any

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.name, "status": self.status.value, "seen": self.seen}
        if self.fix:
            out["fix"] = self.fix
        if self.cause:
            out["cause"] = self.cause
        return out


def ok(name: str, seen: str) -> Check:
    return Check(name, Status.OK, seen)


def unknown(name: str, seen: str, fix: str = "") -> Check:
    return Check(name, Status.UNKNOWN, seen, fix)


def fail(name: str, seen: str, fix: str, cause: ErrorClass | None = None) -> Check:
    return Check(name, Status.FAIL, seen, fix, cause.value if cause is not None else "")


@dataclass(slots=True)
class Section:
    """The checks about one thing: ``endpoint NAME``, ``job file``, ``run directory``."""

    title: str
    checks: list[Check] = field(default_factory=list)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    @property
    def failed(self) -> bool:
        return any(c.status is Status.FAIL for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "checks": [c.to_json() for c in self.checks]}


@dataclass(slots=True)
class Diagnosis:
    sections: list[Section] = field(default_factory=list)
    spent_usd: float = 0.0  # what --probe cost (0 without it)

    @property
    def would_start(self) -> bool:
        return not any(s.failed for s in self.sections)

    @property
    def exit_code(self) -> int:
        return 0 if self.would_start else 2

    def checks(self) -> list[Check]:
        return [c for s in self.sections for c in s.checks]

    def to_json(self) -> dict[str, Any]:
        return {
            "would_start": self.would_start,
            "exit_code": self.exit_code,
            "spent_usd": round(self.spent_usd, 6),
            "sections": [s.to_json() for s in self.sections],
        }
