"""Figures of spec runs and edits: per-variable breakdowns, input → output pairs, and the
(variable × variable) grid of the HTML report.

A job's variables are the log's ``vars`` column (canonical JSON, written by every row of a
spec job); its state is resume's own (``batchgen.runlog.state``). Per value of each variable:
* ``jobs``: distinct jobs logged with that value; ``succeeded`` / ``failed`` / ``pending``
  by their state; ``success_rate`` = succeeded / (succeeded + failed), None when none decided;
* ``attempts``, ``images`` (saved by ok attempts), ``cost_usd`` (every attempt's cost);
* ``latency_p50_s`` / ``latency_p95_s`` over the ok attempts (numpy's linear quantiles).

Nothing is read beyond ``vars`` and ``input_hashes`` for a run that has neither.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from batchgen.analyze.load import read_columns
from batchgen.analyze.model import EditPair, Grid, GridCell, GridJob, VariableRow
from batchgen.runlog.state import DONE, FAILED, RETRYABLE_FAILED, states_from_table

_COLUMNS = [
    "job_id",
    "session",
    "status",
    "final",
    "error_class",
    "fingerprint",
    "vars",
    "latency_s",
    "cost_usd",
    "image_paths",
    "params",
    "input_hashes",
]
EDIT_PAIRS_SHOWN = 24
# variables a spec adds that are not worth a breakdown of their own
_INPUT_VARS = ("images", "image", "mask")


@dataclass
class JobCell:
    job_id: str
    vars: dict[str, str] = field(default_factory=dict)
    state: str = "pending"
    error_class: str | None = None
    images: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    attempts: int = 0
    cost: float = 0.0
    latencies: list[float] = field(default_factory=list)


def job_cells(run_dir: Path | str) -> dict[str, JobCell]:
    """Every logged job of a spec run or of edits, in first-logged order ({} otherwise)."""

    run_dir = Path(run_dir)
    probe = read_columns(run_dir, ["vars", "input_hashes"])
    if probe.num_rows == 0 or (
        probe["vars"].null_count == probe.num_rows
        and probe["input_hashes"].null_count == probe.num_rows
    ):
        return {}
    table = read_columns(run_dir, _COLUMNS)
    cells: dict[str, JobCell] = {}
    for row in table.select(
        ["job_id", "status", "vars", "latency_s", "cost_usd", "image_paths", "params"]
    ).to_pylist():
        cell = cells.get(row["job_id"])
        if cell is None:
            cell = cells[row["job_id"]] = JobCell(row["job_id"])
        if row["vars"] and not cell.vars:
            cell.vars = json.loads(row["vars"])
        if row["params"] and not cell.inputs:
            cell.inputs = _input_refs(row["params"])
        cell.attempts += 1
        cell.cost += row["cost_usd"] or 0.0
        if row["status"] == "ok":
            cell.images = list(row["image_paths"] or [])
            if row["latency_s"] is not None:
                cell.latencies.append(row["latency_s"])
    states = states_from_table(table).table
    names = {DONE: "succeeded", FAILED: "failed", RETRYABLE_FAILED: "failed"}
    for job_id, state, klass in zip(
        states["job_id"].to_pylist(),
        states["state"].to_pylist(),
        states["error_class"].to_pylist(),
        strict=True,
    ):
        if job_id in cells:
            cells[job_id].state = names.get(state, "pending")
            cells[job_id].error_class = klass if names.get(state) == "failed" else None
    return cells


def _input_refs(params: str) -> list[str]:
    try:
        body = json.loads(params)
    except ValueError:
        return []
    refs: list[Any] = []
    for key in ("images", "image"):
        value = body.get(key)
        if value is not None:
            refs = value if isinstance(value, list) else [value]
            break
    return [str(r) for r in refs]


def by_variable(cells: dict[str, JobCell]) -> dict[str, tuple[VariableRow, ...]]:
    groups: dict[str, dict[str, list[JobCell]]] = {}
    for cell in cells.values():
        for name, value in cell.vars.items():
            if name in _INPUT_VARS:
                continue
            groups.setdefault(name, {}).setdefault(value, []).append(cell)
    return {
        name: tuple(_figures(value, members) for value, members in values.items())
        for name, values in groups.items()
    }


def _figures(value: str, members: list[JobCell]) -> VariableRow:
    ok = sum(1 for c in members if c.state == "succeeded")
    failed = sum(1 for c in members if c.state == "failed")
    lat = np.array([x for c in members for x in c.latencies], dtype=float)
    return VariableRow(
        value=value,
        jobs=len(members),
        succeeded=ok,
        failed=failed,
        pending=len(members) - ok - failed,
        success_rate=ok / (ok + failed) if ok + failed else None,
        attempts=sum(c.attempts for c in members),
        images=sum(len(c.images) for c in members if c.state == "succeeded"),
        cost_usd=float(sum(c.cost for c in members)),
        latency_p50_s=float(np.quantile(lat, 0.5)) if lat.size else None,
        latency_p95_s=float(np.quantile(lat, 0.95)) if lat.size else None,
    )


def edit_pairs(cells: dict[str, JobCell], base: Path | None) -> tuple[EditPair, ...]:
    """Input → output of the first edits (inputs resolved against the job file's folder)."""
    out: list[EditPair] = []
    for cell in cells.values():
        if not cell.inputs:
            continue
        inputs = []
        for ref in cell.inputs:
            path = Path(ref)
            if not ref.startswith(("http://", "https://", "file-")) and not path.is_absolute():
                path = (base or Path()) / path
            inputs.append(str(path) if not ref.startswith(("http", "file-")) else ref)
        out.append(
            EditPair(
                job_id=cell.job_id,
                state=cell.state,
                inputs=tuple(inputs),
                outputs=tuple(cell.images),
            )
        )
        if len(out) >= EDIT_PAIRS_SHOWN:
            break
    return tuple(out)


@dataclass(frozen=True, slots=True)
class VariableFigures:
    """RunReport's fields of the same names: {} and () for a run with no spec and no edits."""

    by_variable: dict[str, tuple[VariableRow, ...]]
    edit_pairs: tuple[EditPair, ...]


def variable_figures(run_dir: Path | str, job_file: str | None) -> VariableFigures:
    cells = job_cells(run_dir)
    base = Path(job_file).parent if job_file else None
    return VariableFigures(by_variable(cells), edit_pairs(cells, base))


def grid(run_dir: Path | str, rows: str, cols: str) -> Grid:
    """The jobs of a spec run laid out over two variables: one cell per (row value, column
    value), holding its jobs' states and saved images (repeats and other variables share a
    cell). Raises ValueError naming the variables there are when one is unknown."""
    cells = job_cells(run_dir)
    known = sorted({k for c in cells.values() for k in c.vars})
    for name in (rows, cols):
        if name not in known:
            msg = (
                f"--grid: {name!r} is not a variable of this run "
                f"(variables: {', '.join(known) or 'none: not a spec run'})"
            )
            raise ValueError(msg)
    row_values: list[str] = []
    col_values: list[str] = []
    table: dict[tuple[str, str], list[GridJob]] = {}
    for c in cells.values():
        r, k = c.vars[rows], c.vars[cols]
        if r not in row_values:
            row_values.append(r)
        if k not in col_values:
            col_values.append(k)
        table.setdefault((r, k), []).append(
            GridJob(
                job_id=c.job_id,
                state=c.state,
                error_class=c.error_class,
                images=tuple(c.images),
                label=_grid_label(c.job_id, c.vars, (rows, cols)),
            )
        )
    return Grid(
        rows=rows,
        cols=cols,
        row_values=tuple(row_values),
        col_values=tuple(col_values),
        cells=tuple(
            GridCell(row=r, col=k, jobs=tuple(table.get((r, k), [])))
            for r in row_values
            for k in col_values
        ),
    )


_REPEAT = re.compile(r"\.r(\d+)$")


def _grid_label(job_id: str, variables: dict[str, Any], shown: tuple[str, str]) -> str:
    """What tells a job from the others of its grid cell: the variables the grid does not
    lay out, and the repeat (``background=oak · repeat 2``); "" when it is alone."""
    parts = [f"{k}={v}" for k, v in variables.items() if k not in shown]
    repeat = _REPEAT.search(job_id)
    if repeat:
        parts.append(f"repeat {int(repeat[1])}")
    return " · ".join(parts)


__all__ = ["by_variable", "edit_pairs", "grid", "job_cells", "variable_figures"]
