"""A job file of ``-``: the jobs come on stdin (``cat prompts.txt | batchgen run -``).

Stdin is read once, its format recognised from its first line (JSON lines, a CSV header with
a ``prompt`` column, a YAML spec, else plain text), and saved as a file: a run keeps it in
its run directory (``stdin-jobs.<ext>``, which resume reads again), a plan in a temporary
folder for the length of the plan."""

from __future__ import annotations

import re
import sys
from pathlib import Path

_SPEC_KEY = re.compile(rb"^(prompt|matrix|defaults|zip|repeat|vars_csv)\s*:", re.MULTILINE)


class StdinError(ValueError):
    """Stdin holds no jobs, or is a terminal."""


def read_stdin() -> bytes:
    if sys.stdin is None or sys.stdin.isatty():
        msg = (
            'the job file "-" reads the jobs from stdin, but stdin is a terminal: pipe them in, '
            "e.g. `cat prompts.txt | batchgen run -`"
        )
        raise StdinError(msg)
    data = sys.stdin.buffer.read()
    if not data.strip():
        msg = 'the job file "-" (stdin) is empty: pipe a job file in'
        raise StdinError(msg)
    return data


def suffix_of(data: bytes) -> str:
    """The job file extension that stdin's content reads as."""
    text = data.lstrip(b"\xef\xbb\xbf")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), b"")
    if first.startswith(b"{"):
        return ".jsonl"
    if _SPEC_KEY.search(text):
        return ".yaml"
    header = [c.strip().strip(b'"').lower() for c in first.split(b",")]
    if len(header) > 1 and b"prompt" in header:
        return ".csv"
    return ".txt"


def save_stdin(folder: Path, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"stdin-jobs{suffix_of(data)}"
    path.write_bytes(data)
    return path
