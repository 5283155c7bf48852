"""The diagnosis as text (one line a check: mark, name, what was seen, then the fix) or JSON."""

from __future__ import annotations

import json

from batchgen.doctor.model import Diagnosis, Status
from batchgen.errors import printable


def to_text(diagnosis: Diagnosis) -> str:
    lines: list[str] = []
    for section in diagnosis.sections:
        lines.append(printable(section.title, one_line=True))
        for check in section.checks:
            lines.append(
                f"  {check.status.mark} {check.name}: {printable(check.seen, one_line=True)}"
            )
            if check.fix and check.status is not Status.OK:
                lines.append(f"      fix: {printable(check.fix, one_line=True)}")
    fails = sum(c.status is Status.FAIL for c in diagnosis.checks())
    unknowns = sum(c.status is Status.UNKNOWN for c in diagnosis.checks())
    if diagnosis.would_start:
        verdict = "a run would start"
        if unknowns:
            verdict += f" ({unknowns} ? not checked or not sure)"
    else:
        verdict = f"a run would not start: {fails} ✗ to fix"
    if diagnosis.spent_usd:
        verdict += f"; the probe spent ${diagnosis.spent_usd:.4f}"
    lines.append(verdict)
    return "\n".join(lines)


def to_json(diagnosis: Diagnosis) -> str:
    return json.dumps(diagnosis.to_json(), indent=2, ensure_ascii=False)
