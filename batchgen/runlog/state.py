"""Per-job state for resume, computed column-wise from the log (no Python loop over rows).

The state of a job is decided by its last ``final`` row (the last session that finished it)::
    done              status ok
    failed            status error, class content_policy / bad_request (never retried), or
                      a delivered answer the client refused (code answer_refused: sending it
                      again would be billed and refused again)
    retryable_failed  status error, a retryable class, attempts exhausted
    pending           status skipped (budget / cancelled / auth / quota), or an error of a
                      stop-the-run class
    unfinished        rows but no final row in its latest session (the run died mid-job)

Job ids never seen in the log have no state: they are new or were never reached.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batchgen.errors import REFUSED_CODE, Action, ErrorClass
from batchgen.runlog.journal import journal_path
from batchgen.runlog.orphans import Orphan, find_orphans
from batchgen.runlog.reader import read_log, resolve_log_dir
from batchgen.runlog.rundir import RunDir
from batchgen.runlog.writer import inflight_path

__all__ = [
    "JobStates",
    "Orphan",
    "Remaining",
    "crashed_inflight",
    "find_orphans",
    "job_states",
    "remaining",
]

DONE, FAILED, RETRYABLE_FAILED, PENDING, UNFINISHED = (
    "done",
    "failed",
    "retryable_failed",
    "pending",
    "unfinished",
)
_FAIL_CLASSES = pa.array([c.value for c in ErrorClass if c.action is Action.FAIL_JOB])
_PENDING_CLASSES = pa.array(
    [c.value for c in ErrorClass if c.action in (Action.STOP_RUN, Action.PENDING)]
)
_COLUMNS = ["job_id", "session", "status", "final", "error_class", "error_code", "fingerprint"]


@dataclass(frozen=True, slots=True)
class JobStates:
    """One row per job id seen in the log: ``table`` has job_id, state, fingerprint (of the
    job's latest row), error_class and session (of its last final row). Kept as Arrow so a
    million jobs cost tens of MB, not a dict of Python strings."""

    table: pa.Table
    inflight_at_crash: frozenset[str] = field(default_factory=frozenset)

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def ids(self, state: str) -> set[str]:
        mask = pc.equal(self.table["state"], state)
        return set(self.table["job_id"].filter(mask).to_pylist())

    def done(self) -> dict[str, str]:
        """job id → fingerprint of the body that produced its images."""
        t = self.table.filter(pc.equal(self.table["state"], DONE))
        return dict(zip(t["job_id"].to_pylist(), t["fingerprint"].to_pylist(), strict=True))

    def counts(self) -> dict[str, int]:
        vc = pc.value_counts(self.table["state"]) if len(self) else pa.array([])
        out = dict.fromkeys((DONE, FAILED, RETRYABLE_FAILED, PENDING, UNFINISHED), 0)
        for item in vc.to_pylist():
            out[item["values"]] = item["counts"]
        return out


def _last_index(codes: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """For each of ``k`` job codes, the highest row number among ``rows`` (-1 if none)."""
    last = np.full(k, -1, dtype=np.int64)
    np.maximum.at(last, codes[rows], rows)
    return last


def _take_or_null(column: pa.ChunkedArray, index: np.ndarray) -> pa.Array:
    return column.take(pa.array(index, mask=index < 0))


def states_from_table(t: pa.Table, inflight_at_crash: frozenset[str] = frozenset()) -> JobStates:
    """Compute states from a log table holding at least ``_COLUMNS``, rows in write order.

    Job ids are dictionary-encoded once; "last row of each job" is then a numpy
    ``maximum.at`` over integer codes, cheaper than a hash group-by plus a join."""
    n = t.num_rows
    encoded = pc.dictionary_encode(t["job_id"].combine_chunks())
    ids = encoded.dictionary
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    every = np.arange(n, dtype=np.int64)
    final = pc.fill_null(t["final"], False).to_numpy(zero_copy_only=False) if n else every > 0
    last = _last_index(codes, every, len(ids))
    last_final = _last_index(codes, every[final], len(ids))

    session = pc.fill_null(t["session"], 0).to_numpy() if n else np.zeros(0, np.int32)
    unfinished = (last_final < 0) | (session[last] > session[np.maximum(last_final, 0)])
    status = _take_or_null(t["status"], last_final)
    ec = _take_or_null(t["error_class"], last_final)
    is_error = pc.equal(status, "error")
    for_good = pc.is_in(ec, value_set=_FAIL_CLASSES)
    if "error_code" in t.column_names:  # a refused delivered answer: failed for good too
        refused = pc.equal(_take_or_null(t["error_code"], last_final), REFUSED_CODE)
        for_good = pc.or_kleene(for_good, pc.fill_null(refused, False))
    conds = [
        pa.array(unfinished),
        pc.equal(status, "ok"),
        pc.and_kleene(is_error, for_good),
        pc.or_kleene(pc.equal(status, "skipped"), pc.is_in(ec, value_set=_PENDING_CLASSES)),
    ]
    conds = [pc.fill_null(c, False) for c in conds]
    state = pc.case_when(
        pc.make_struct(*conds, field_names=["c0", "c1", "c2", "c3"]),
        UNFINISHED,
        DONE,
        FAILED,
        PENDING,
        RETRYABLE_FAILED,
    )
    table = pa.table(
        {
            "job_id": ids,
            "state": state,
            "fingerprint": _take_or_null(t["fingerprint"], last),
            "error_class": ec,
            "session": _take_or_null(t["session"], last_final),
        }
    )
    return JobStates(table, inflight_at_crash)


def job_states(run_dir: Path | str, *, with_inflight: bool = True) -> JobStates:
    """Per-job states of a run (or a bare log dir). ``inflight_at_crash`` comes from
    ``crashed_inflight`` (call this BEFORE ``RunDir.mark_crashed()``)."""
    t = read_log(run_dir, _COLUMNS)
    inflight = crashed_inflight(run_dir) if with_inflight else set()
    return states_from_table(t, frozenset(inflight))


@dataclass(frozen=True, slots=True)
class Remaining:
    """What resume runs, and how the job file changed against the log."""

    run: frozenset[str]
    added: tuple[str, ...]  # in the job file, not in the log: new or never reached; by line
    removed: tuple[str, ...]  # in the log, no longer in the job file (not run)
    edited: tuple[str, ...]  # same id, different body than last logged (rerun), by line
    skipped_done: int
    skipped_failed: int  # failed for good and not --retry-failed
    possibly_billed_twice: frozenset[str]  # in flight at a crash and run again now

    def summary(self) -> dict[str, int]:
        return {
            "run": len(self.run),
            "added": len(self.added),
            "removed": len(self.removed),
            "edited": len(self.edited),
            "skipped_done": self.skipped_done,
            "skipped_failed": self.skipped_failed,
            "possibly_billed_twice": len(self.possibly_billed_twice),
        }


def _job_index_table(job_index: Iterable[tuple[str, str, int]]) -> pa.Table:
    # a plain loop: zip(*job_index) is several times slower for a million tuples
    ids: list[str] = []
    fps: list[str] = []
    lines: list[int] = []
    for job_id, fp, line in job_index:
        ids.append(job_id)
        fps.append(fp)
        lines.append(line)
    return pa.table(
        {
            "job_id": pa.array(ids, pa.string()),
            "job_fp": pa.array(fps, pa.string()),
            "line": pa.array(lines, pa.int64()),
        }
    )


def remaining(
    job_index: Iterable[tuple[str, str, int]] | pa.Table,
    states: JobStates,
    retry_failed: bool = False,
) -> Remaining:
    """``job_index`` yields (job id, fingerprint, line) for every job of the (maybe edited)
    job file, or is that as a table (columns job_id, job_fp, line: ``runlog.jobindex``).
    Runs: never attempted, pending, unfinished, retryable failed, edited; failed for good
    only with ``retry_failed``."""
    if isinstance(job_index, pa.Table):
        jobs = job_index.select(["job_id", "job_fp", "line"])
    else:
        jobs = _job_index_table(job_index)
    logged = states.table
    # one hash lookup per job; position in ``logged`` or null when the log never saw it
    pos = pc.index_in(jobs["job_id"], value_set=logged["job_id"].combine_chunks())
    in_log = pc.is_valid(pos)
    state = logged["state"].take(pos)
    edited = pc.fill_null(pc.not_equal(jobs["job_fp"], logged["fingerprint"].take(pos)), False)
    rerun_states = [PENDING, UNFINISHED, RETRYABLE_FAILED] + ([FAILED] if retry_failed else [])
    by_state = pc.is_in(state, value_set=pa.array(rerun_states))
    run = pc.or_(pc.or_(pc.invert(in_log), edited), by_state)
    not_run = pc.invert(run)
    run_ids = frozenset(jobs["job_id"].filter(run).to_pylist())
    seen = np.zeros(len(logged), dtype=bool)
    seen[pos.drop_null().to_numpy()] = True
    removed = logged["job_id"].filter(pa.array(~seen))

    def count(mask: pa.Array) -> int:
        return pc.sum(mask).as_py() or 0

    def ids_by_line(mask: pa.Array) -> tuple[str, ...]:
        return tuple(jobs.filter(mask).sort_by("line")["job_id"].to_pylist())

    return Remaining(
        run=run_ids,
        added=ids_by_line(pc.invert(in_log)),
        removed=tuple(sorted(removed.to_pylist())),
        edited=ids_by_line(edited),
        skipped_done=count(pc.and_(not_run, pc.fill_null(pc.equal(state, DONE), False))),
        skipped_failed=count(pc.and_(not_run, pc.fill_null(pc.equal(state, FAILED), False))),
        possibly_billed_twice=frozenset(states.inflight_at_crash & run_ids),
    )


def crashed_inflight(run_dir: Path | str, sessions: Iterable[int] | None = None) -> set[str]:
    """Job ids in flight when a session died (its last inflight file, and its sent journal)
    that have no final row in that session: they may have been billed and will be sent again.

    ``sessions`` defaults to the sessions of run.json without an end record (all sessions
    with an inflight file when there is no run.json)."""
    log_dir = resolve_log_dir(run_dir)
    state_dir = log_dir.parent / "state"
    if sessions is None:
        sessions = _unended_sessions(log_dir.parent, state_dir)
    out: set[str] = set()
    for s in sessions:
        ids: set[str] = set()
        path = inflight_path(state_dir, s)
        if path.exists():
            try:
                ids.update(str(i) for i in json.loads(path.read_text())["job_ids"])
            except (ValueError, KeyError, TypeError):
                pass  # damaged by hand: the sent journal below still names the jobs
        # requests sent after the last snapshot are in the sent journal
        journal = journal_path(state_dir, s)
        if journal.exists():
            ids.update(journal.read_text(encoding="utf-8").split())
        if not ids:
            continue
        mine = (pc.field("session") == s) & (pc.field("final") == True)  # noqa: E712
        finished = read_log(log_dir, ["job_id"], filter=mine)["job_id"].to_pylist()
        out |= ids - set(finished)
    return out


def _unended_sessions(run_dir: Path, state_dir: Path) -> list[int]:
    rd = RunDir(run_dir)
    if rd.exists():
        return rd.unended_sessions()
    return sorted(int(p.stem.split("-")[1]) for p in state_dir.glob("inflight-*.json"))
