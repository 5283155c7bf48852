"""Driving the real `batchgen` CLI as a subprocess against a simulator, and reading what it left.

    cli = Cli(["run", str(jobs), "--run-dir", str(run), *sim_flags(sim)], env=cli_env())
    wait_until(lambda: sim.stats["ok"] >= 50, what="50 served requests", cli=cli)
    cli.kill_hard()                                 # SIGKILL: what kill -9 does

Everything talks to 127.0.0.1 only. Waiting is polling with a deadline, never a fixed sleep
that a slow machine could outrun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from batchgen.runlog.reader import read_log

SECRET_KEY = "sk-test-SECRET123456"
MODEL_FLAGS = ("--model", "gpt-image-1", "--size", "1024x1024", "--quality", "low")
# one subprocess step (start-up ~1 s on a busy 2-core box, then the work) never takes this long
STEP_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Finished:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli_env(key: str | None = SECRET_KEY, *, crash_at: str | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: this one without OPENAI_* (a developer's real
    base URL or key must not leak into a test), plus the test key and an optional fault point."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "BATCHGEN_"))}
    if key is not None:
        env["OPENAI_API_KEY"] = key
    if crash_at is not None:
        env["BATCHGEN_CRASH_AT"] = crash_at
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"  # rich wraps at the terminal width; keep printed commands on one line
    return env


def sim_flags(sim: Any) -> list[str]:
    return ["--base-url", sim.base_url]


class Cli:
    """A running `batchgen` subprocess. Its output goes to unnamed temp files, not pipes: a
    child that prints while the test is busy polling must never block on a full pipe."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path | None = None,
        new_group: bool = False,
    ) -> None:
        self.args = list(args)
        # open until _collected reads and closes them: the child writes to them meanwhile
        self._out = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._err = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batchgen", *self.args],
            env=env,
            cwd=cwd,
            stdout=self._out,
            stderr=self._err,
            text=True,
            # its own process group: a test signals the group, as a terminal's Ctrl-C does
            start_new_session=new_group,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def stdout_so_far(self) -> str:
        """What the child printed up to now (read at an offset: the file position is the
        child's, shared through the inherited descriptor)."""
        return os.pread(self._out.fileno(), 1 << 20, 0).decode("utf-8", "replace")

    def _collected(self) -> Finished:
        texts = []
        for f in (self._out, self._err):
            f.seek(0)
            texts.append(f.read())
            f.close()
        return Finished(self.proc.returncode, texts[0], texts[1])

    def finish(self, timeout: float = STEP_TIMEOUT_S) -> Finished:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            done = self._collected()
            msg = f"batchgen {self.args} still running after {timeout}s:\n{done.output}"
            raise AssertionError(msg) from None
        return self._collected()

    def kill_hard(self) -> Finished:
        """SIGKILL (what kill -9 sends), then reap."""
        self.proc.kill()
        return self.finish()


def run_cli(
    args: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = STEP_TIMEOUT_S,
) -> Finished:
    return Cli(args, env=env, cwd=cwd).finish(timeout)


def wait_until(
    condition: Callable[[], bool], *, what: str, timeout: float = 30.0, cli: Cli | None = None
) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout`` s, or at once if
    ``cli`` exits first (its output is in the message)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if cli is not None and not cli.running():
            done = cli.finish()
            msg = f"batchgen exited {done.code} before {what}:\n{done.output}"
            raise AssertionError(msg)
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout}s waiting for {what}"
            raise AssertionError(msg)
        time.sleep(0.002)  # a poll interval, not a timing assumption


# ---- job files -----------------------------------------------------------------------------
def write_text_jobs(path: Path, prompts: Iterable[str]) -> Path:
    path.write_text("".join(f"{p}\n" for p in prompts), encoding="utf-8")
    return path


def write_jsonl_jobs(path: Path, jobs: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs), encoding="utf-8")
    return path


# ---- what a run left behind ----------------------------------------------------------------
def log_table(run_dir: Path, columns: list[str] | None = None) -> pa.Table:
    return read_log(run_dir, columns)


def ok_rows(run_dir: Path) -> pa.Table:
    t = read_log(run_dir, ["job_id", "status", "final", "image_paths", "cost_source", "prompt"])
    return t.filter(pc.equal(t["status"], "ok"))


def ok_counts(run_dir: Path) -> dict[str, int]:
    """job id → number of ok rows (every one of them must also be final)."""
    t = ok_rows(run_dir)
    assert pc.all(t["final"]).as_py() in (True, None), "an ok row that is not final"
    counts: dict[str, int] = {}
    for job_id in t["job_id"].to_pylist():
        counts[job_id] = counts.get(job_id, 0) + 1
    return counts


def image_files(run_dir: Path) -> set[str]:
    """Visible image files as the log names them (``images/<name>``); temp files and the
    ``--metadata`` sidecars (``<name>.json``) excluded."""
    names = (p.name for p in (run_dir / "images").iterdir())
    return {
        f"images/{name}"
        for name in names
        if not name.startswith(".") and not name.endswith(".json")
    }


def logged_images(run_dir: Path) -> list[str]:
    return [p for paths in ok_rows(run_dir)["image_paths"].to_pylist() for p in paths or []]


def check_log_readable(run_dir: Path) -> int:
    """Every log file opens with pyarrow, the directory as a dataset, and DuckDB globbing sees
    the same rows as batchgen's reader (no leftovers a plain reader would double count).
    Returns the row count."""
    log_dir = run_dir / "log"
    assert not [p.name for p in log_dir.iterdir() if p.name.startswith(".")], "temp files left"
    names = sorted(p.name for p in log_dir.glob("*.parquet"))
    per_file = sum(pq.read_table(log_dir / n).num_rows for n in names)
    as_dataset = ds.dataset(str(log_dir), format="parquet").count_rows()
    con = duckdb.connect()
    try:
        glob = str(log_dir / "*.parquet")
        in_duckdb = con.execute(f"select count(*) from read_parquet('{glob}')").fetchone()[0]
        ok_in_duckdb = con.execute(
            f"select count(*) from read_parquet('{glob}') where status = 'ok'"
        ).fetchone()[0]
    finally:
        con.close()
    ours = read_log(run_dir, ["status"])
    assert per_file == as_dataset == in_duckdb == ours.num_rows, (names, per_file, in_duckdb)
    assert ok_in_duckdb == pc.sum(pc.equal(ours["status"], "ok")).as_py()
    return ours.num_rows


def files_holding_secret(run_dir: Path, secret: str = SECRET_KEY) -> list[str]:
    """Files under ``run_dir`` whose bytes contain ``secret`` (should be none)."""
    needle = secret.encode()
    return [str(p) for p in run_dir.rglob("*") if p.is_file() and needle in p.read_bytes()]


def job_ids_by_prompt(run_dir: Path) -> dict[str, str]:
    """prompt → job id for the run's job file, with the defaults recorded in run.json."""
    from batchgen.jobs import iter_jobs

    manifest = json.loads((run_dir / "run.json").read_text())
    defaults = manifest["settings"].get("defaults") or {}
    return {job.prompt: job.id for job in iter_jobs(manifest["job_file"], defaults)}


def secret_in_log(run_dir: Path, secret: str = SECRET_KEY) -> bool:
    """True if any string cell of the log holds ``secret`` (parquet pages may be compressed,
    so grepping the bytes is not enough)."""
    t = read_log(run_dir)
    for name in t.column_names:
        column = t[name]
        if pa.types.is_string(column.type) and pc.any(pc.match_substring(column, secret)).as_py():
            return True
    return False
