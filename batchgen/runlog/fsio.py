"""Durable file primitives: fsync a directory, write a small file atomically.

A rename is only durable once the directory entry is on disk, hence ``fsync_dir`` after every
rename; a file is only complete after its data is fsynced, hence fsync before the rename.
"""

from __future__ import annotations

import os
from pathlib import Path

from batchgen import faultpoints


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, fault_point: str | None = None) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a torn one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if fault_point:
        faultpoints.hit(fault_point)
    os.replace(tmp, path)
    fsync_dir(path.parent)
