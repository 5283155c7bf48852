"""The bench's output: a table on the terminal (rich) and ``bench/results.json``."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.metrics import Figure


@dataclass(frozen=True, slots=True)
class Outcome:
    """One benchmark's figures (median over its repeats), its raw details and its wall time."""

    key: str
    title: str
    figures: list[Figure]
    details: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(f.passed is not False for f in self.figures)

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "passed": self.passed,
            "seconds": round(self.seconds, 1),
            "error": self.error,
            "figures": [f.as_dict() for f in self.figures],
            "details": self.details,
        }


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_avg_at_start": list(os.getloadavg()),
    }


def fmt_value(f: Figure) -> str:
    if f.value is None:
        return "—"
    if f.unit == "" and f.target is not None and f.target.bound < 0.1:
        return f"{100 * f.value:.2f} %"
    if abs(f.value) >= 100:
        return f"{f.value:,.0f} {f.unit}".strip()
    return f"{f.value:.3g} {f.unit}".strip()


def fmt_target(f: Figure) -> str:
    if f.target is None:
        return ""
    if f.unit == "" and f.target.bound < 0.1:
        return f"{f.target.op} {100 * f.target.bound:g} %"
    return f"{f.target} {f.unit}".strip()


def table(outcomes: list[Outcome]) -> Table:
    t = Table(title="batchgen benchmarks (ratios measured in the same run)")
    for name, justify in (
        ("benchmark", "left"),
        ("figure", "left"),
        ("value", "right"),
        ("target", "right"),
        ("", "center"),
        ("note", "left"),
    ):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for o in outcomes:
        if o.error:
            t.add_row(o.title, "[red]did not run[/red]", "", "", "[red]FAIL[/red]", o.error[:90])
            continue
        for i, f in enumerate(o.figures):
            mark = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: ""}[f.passed]
            t.add_row(o.title if i == 0 else "", f.name, fmt_value(f), fmt_target(f), mark, f.note)
        t.add_section()
    return t


def write_results(path: Path, outcomes: list[Outcome], meta: dict[str, Any]) -> None:
    data = {
        **meta,
        "machine": machine(),
        "passed": all(o.passed for o in outcomes),
        "benchmarks": {o.key: o.as_dict() for o in outcomes},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def print_table(outcomes: list[Outcome], console: Console | None = None) -> None:
    console = console or Console()
    if not console.is_terminal:
        # make's output, a log file: wide enough that a figure's name and note stay on one line
        console = Console(width=150)
    console.print(table(outcomes))
