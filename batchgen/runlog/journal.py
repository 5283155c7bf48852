"""The sent journal: every job id, appended just before its request goes out.

The log's in-flight file is only rewritten at each flush (about once a second); a request sent
after the last flush and lost to a kill -9 would be missed. One unbuffered ``write`` per
request (no fsync: the page cache outlives the process) closes that window. A session that
ends cleanly removes its journal.
"""

from __future__ import annotations

import os
from pathlib import Path


def journal_path(state_dir: Path, session: int) -> Path:
    return Path(state_dir) / f"sent-{session:05d}.txt"


class SentJournal(set[str]):
    """The pool's live in-flight set (``add`` before a request is sent, ``discard`` after its
    row is appended) that also appends each added id to the session's sent journal.

    Use it as the ``inflight`` set of ``run_pool`` and of ``RunLogWriter.set_inflight``; call
    ``close(remove=True)`` once the writer has closed (every row durable): a session that ends
    cleanly leaves no journal."""

    def __init__(self, state_dir: Path, session: int) -> None:
        super().__init__()
        self.error: OSError | None = None
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        self.path = journal_path(state_dir, session)
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o644
        )

    def add(self, job_id: str) -> None:
        super().add(job_id)
        if self._fd is not None:
            try:
                os.write(self._fd, f"{job_id}\n".encode())
            except OSError as e:
                # disk full or read-only: the run is stopped (``error`` is watched); the
                # writer's in-flight snapshot still names the jobs in flight
                self.error = e
                os.close(self._fd)
                self._fd = None

    def close(self, *, remove: bool) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            self.path.unlink(missing_ok=True)
