"""The run directory: run.json (manifest and sessions) and the one-writer lock.

    runs/<name>/run.json   version, run_id, job file (path, sha256, counts), settings without
                           secrets, sessions (start, pid, command, end, how it ended)
    runs/<name>/run.lock   flock'ed by the one process writing the run; holds pid/host/start
                           for the message a second process gets

The lock is ``fcntl.flock`` on the open file: the kernel drops it when the holder dies, even
by ``kill -9``, so a stale run.lock never blocks anyone. (flock is not reliable on some network
filesystems; keep run directories on local disk.) run.json is replaced atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from batchgen.errors import RunDirError as RunDirError  # re-exported: callers import it here
from batchgen.errors import RunLocked, redact
from batchgen.redaction import ENV_NAME, SECRETISH, is_env_name
from batchgen.redaction import redact_argv as redact_args
from batchgen.runlog import manifest
from batchgen.runlog.fsio import atomic_write_bytes

MANIFEST_VERSION = 1
ENDINGS = frozenset(
    {
        "completed",
        "failed_jobs",
        "stopped_auth",
        "stopped_quota",
        "stopped_budget",
        "stopped_rate_limit",
        "stopped_network",  # every request failed with a network error: endpoint unreachable
        "stopped_disk",
        "interrupted",
        "crashed",
        "detached",  # --via batch --detach: batches submitted, left running at the provider
    }
)
_STRIPPED = "<stripped>"


# RunDirBusy: the name the tests and older callers use for batchgen.errors.RunLocked
RunDirBusy = RunLocked


def strip_secrets(settings: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Drop values that may be secrets: a string under a key naming key/token/secret/password
    unless it is an environment variable NAME (``api_key_env: OPENAI_API_KEY`` is kept), and
    any string that looks like an API key anywhere. Returns (clean copy, dotted paths dropped)."""
    dropped: list[str] = []

    def clean(value: Any, path: str, secretish: bool) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                sub = f"{path}.{k}" if path else str(k)
                c = clean(v, sub, secretish or bool(SECRETISH.search(str(k))))
                if c is not _STRIPPED:
                    out[k] = c
            return out
        if isinstance(value, list | tuple):
            return [
                c
                for i, v in enumerate(value)
                if (c := clean(v, f"{path}[{i}]", secretish)) is not _STRIPPED
            ]
        if isinstance(value, str) and (
            (secretish and not _name_ok(path, value)) or redact(value, ()) != value
        ):
            dropped.append(path)
            return _STRIPPED
        return value

    return clean(settings, "", False), dropped


def _name_ok(path: str, value: str) -> bool:
    """A secret-named setting may keep a variable's NAME: a ``*_env`` one in any letter case
    (``key_env = "openai_key"``), unless a key was pasted there; others in upper case."""
    return is_env_name(value) if path.endswith("_env") else bool(ENV_NAME.match(value))


def redact_argv(argv: Sequence[str]) -> list[str]:
    """The command line without secrets (the one redaction: batchgen.redaction)."""

    return redact_args(argv)


def _tool_version() -> str:
    try:
        return importlib.metadata.version("batchgen")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _now() -> float:
    return time.time()


class RunDir:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.log_dir = self.path / "log"
        self.images_dir = self.path / "images"
        self.state_dir = self.path / "state"
        self.manifest_path = self.path / "run.json"
        self.lock_path = self.path / "run.lock"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ---- manifest -----------------------------------------------------------------------
    def exists(self) -> bool:
        return self.manifest_path.exists()

    def create(
        self,
        job_file: Path | str,
        job_sha256: str,
        job_count: int,
        image_count: int,
        settings: dict[str, Any],
    ) -> dict[str, Any]:
        """Start a new run: make the directories and write run.json (refuses an existing run)."""
        self.refuse_existing()
        for d in (self.path, self.log_dir, self.images_dir, self.state_dir):
            d.mkdir(parents=True, exist_ok=True)
        clean, dropped = strip_secrets(settings)
        doc = {
            "version": MANIFEST_VERSION,
            "batchgen_version": _tool_version(),
            "run_id": uuid.uuid4().hex,
            "created_at": _now(),
            "job_file": str(Path(job_file).resolve()),
            "job_file_given": str(job_file),
            "job_file_sha256": job_sha256,
            "jobs": job_count,
            "images": image_count,
            "settings": clean,
            "settings_stripped": dropped,
            "sessions": [],
        }
        self._write(doc)
        return doc

    def refuse_existing(self) -> None:
        """RunDirError if this directory already holds a run (or is not a directory)."""
        if self.path.exists() and not self.path.is_dir():
            msg = f"{self.path} is a file, not a directory: pick another --run-dir"
            raise RunDirError(msg)
        if self.exists():
            fresh = self.path.with_name(f"{self.path.name}-2")
            msg = (
                f"{self.manifest_path} exists: {self.path} already holds a run. Use "
                f"`batchgen resume {self.path}` to continue it (`batchgen report {self.path}` "
                f"shows it), or start a new run in another directory: --run-dir {fresh} (or "
                f"leave --run-dir out for a new timestamped one; delete {self.path} to reuse "
                "its name)"
            )
            raise RunDirError(msg)

    def load(self, *, strict: bool = False) -> dict[str, Any]:
        """run.json, checked: what is present must make sense (types, pool settings);
        ``strict`` (before a session or an export) also requires every key a session uses."""
        try:
            doc = json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            msg = (
                f"{self.manifest_path} not found: {self.path} is not a batchgen run directory "
                "(start one with `batchgen run JOBS --run-dir DIR`)"
            )
            raise RunDirError(msg) from None
        except json.JSONDecodeError as e:
            msg = (
                f"{self.manifest_path}:{e.lineno}: not valid JSON ({e.msg}); restore it from "
                "a backup or fix it by hand"
            )
            raise RunDirError(msg) from None
        if not isinstance(doc, dict) or doc.get("version") != MANIFEST_VERSION:
            if not isinstance(doc, dict):
                doc = {"version": f"<a JSON {type(doc).__name__}, not an object>"}
            msg = (
                f"{self.manifest_path}: manifest version {doc.get('version')!r}, this batchgen "
                f"reads version {MANIFEST_VERSION}; use the batchgen that created the run"
            )
            raise RunDirError(msg)
        found = manifest.problems(doc, ENDINGS if strict else None, strict=strict)
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            msg = (
                f"{self.manifest_path}: {found[0]}{more}; run.json was edited or damaged: "
                "fix the key by hand or restore it from a backup"
            )
            raise RunDirError(msg)
        return doc

    def manifest(self, *, strict: bool = False) -> manifest.Manifest:
        """run.json checked as ``load`` does, typed."""
        return manifest.Manifest.from_doc(self.load(strict=strict), self.path.name)

    def _write(self, doc: dict[str, Any]) -> None:
        atomic_write_bytes(self.manifest_path, json.dumps(doc, indent=2).encode())

    # ---- sessions -----------------------------------------------------------------------
    def begin_session(self, settings_overrides: dict[str, Any], argv: Sequence[str]) -> int:
        """Record a new session (hold ``lock()``); returns its number (1, 2, ...)."""
        doc = self.load()
        session = max((s["session"] for s in doc["sessions"]), default=0) + 1
        clean, dropped = strip_secrets(settings_overrides)
        doc["sessions"].append(
            {
                "session": session,
                "started_at": _now(),
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "settings": clean,
                "settings_stripped": dropped,
                "command": redact_argv(argv),
                "ended_at": None,
                "how": None,
                "summary": None,
            }
        )
        self._write(doc)
        return session

    def end_session(self, session: int, how: str, summary: dict[str, Any]) -> None:
        if how not in ENDINGS:
            msg = f"end_session({session}, {how!r}): how must be one of {sorted(ENDINGS)}"
            raise ValueError(msg)
        doc = self.load()
        rec = self._session(doc, session)
        rec.update(ended_at=_now(), how=how, summary=summary)
        self._write(doc)

    def unended_sessions(self) -> list[int]:
        """Sessions with no end record: their process died (call under ``lock()``)."""
        return [s["session"] for s in self.load()["sessions"] if not s.get("how")]

    def mark_crashed(self, before: int | None = None) -> list[int]:
        """Recovery: give every session without an end record (numbered below ``before``, when
        given: not the session now starting) ``how="crashed"``. Only once what
        ``runlog.state.crashed_inflight`` found in them is durable in the log: it looks at
        exactly these sessions, and a session marked crashed is not looked at again."""
        doc = self.load()
        marked = []
        for rec in doc["sessions"]:
            if not rec.get("how") and (before is None or rec["session"] < before):
                rec.update(how="crashed", summary={})
                marked.append(rec["session"])
        if marked:
            self._write(doc)
        return marked

    def _session(self, doc: dict[str, Any], session: int) -> dict[str, Any]:
        for rec in doc["sessions"]:
            if rec["session"] == session:
                found: dict[str, Any] = rec
                return found
        msg = f"{self.manifest_path}: no session {session} (sessions: "
        msg += f"{[s['session'] for s in doc['sessions']]}); call begin_session() first"
        raise RunDirError(msg)

    # ---- the one-writer lock ------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's one-writer lock for the ``with`` block, or raise ``RunLocked``.
        A block that started no run here (refused before run.json was written) leaves no
        run.lock behind, nor the directory it made for it."""
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except (FileExistsError, NotADirectoryError):
            msg = f"{self.path} (or a folder above it) is a file: pick another --run-dir"
            raise RunDirError(msg) from None
        except OSError as exc:
            msg = f"cannot create the run directory {self.path}: {exc.strerror or exc}"
            raise RunDirError(msg) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLocked(self._busy_message(fd)) from None
            info = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": _now()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            os.fsync(fd)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                if not self.manifest_path.exists():  # nothing was started: tidy up
                    with contextlib.suppress(OSError):
                        os.unlink(self.lock_path)
                        if created:
                            self.path.rmdir()  # only if empty
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _busy_message(self, fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except json.JSONDecodeError:
            info = {}
        pid, host = info.get("pid", "?"), info.get("host", "?")
        since = info.get("started_at")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if since else "?"
        return (
            f"{self.path} is in use by batchgen pid {pid} on {host} (since {when}); "
            f"{self.lock_path} is held. Wait for it to finish or stop it (`kill {pid}`), then "
            f"`batchgen resume {self.path}`. The lock is released automatically when that "
            "process exits, even if it crashed."
        )
