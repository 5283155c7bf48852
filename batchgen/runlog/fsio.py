"""Durable file primitives: fsync a directory, write a small file atomically.

A rename is only durable once the directory entry is on disk, hence ``fsync_dir`` after every
rename; a file is only complete after its data is fsynced, hence fsync before the rename.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from batchgen import faultpoints

# a temp file is always a new regular file of ours: never an existing file, never a symlink
# (a link planted at the temp name must not make us write outside the run directory)
EXCLUSIVE = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def open_exclusive(path: Path | str, mode: int = 0o644) -> int:
    """Create ``path`` as a new file (O_EXCL, O_NOFOLLOW) and return its descriptor.

    Whatever sits at the name already (a temp file a killed process left, or a planted
    symlink) is unlinked first, never followed; the create is exclusive either way, so if
    something reappears in between, this raises instead of writing through it."""
    try:
        return os.open(path, EXCLUSIVE, mode)
    except FileExistsError:
        os.unlink(path)  # removes a symlink itself, not its target
        return os.open(path, EXCLUSIVE, mode)


def create_temp(path: Path | str) -> BinaryIO:
    """``open_exclusive`` as a binary file object (for pyarrow and plain writes)."""
    return os.fdopen(open_exclusive(path), "wb")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, fault_point: str | None = None) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a torn one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with create_temp(tmp) as f:
            faultpoints.fail("file:write")
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fault_point:
        faultpoints.hit(fault_point)
    os.replace(tmp, path)
    fsync_dir(path.parent)
