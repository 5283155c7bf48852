"""Where benchmark 3's clients write their images, and what filesystem that is.

On this project's VMs a fresh 48 KB write into ext4's page cache costs 0.1-0.9 ms of kernel
time, swinging 10x between runs of the same loop (measured: docs/bench.md), and the cost does
not spread over threads. Written to ext4, benchmark 3 measures the disk's mood, not the
client; so its judged round writes to a memory filesystem (tmpfs) where there is one, and a
second round on the disk is reported beside it for context.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MEMORY_FS = ("tmpfs", "ramfs")
_SHM = Path("/dev/shm")
_NEEDED_BYTES = 1 << 30  # one client's 5,000 × 48 KB images and run dir, with room to spare


def fs_type(path: Path) -> str:
    """The filesystem type of the mount holding ``path`` (``/proc/self/mounts``), or "?"."""
    target = os.path.realpath(path)
    best, kind = "", "?"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return kind
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, fields[2]
    return kind


def memory_root() -> Path | None:
    """A writable memory filesystem with room for one client's files, or None."""
    try:
        if not _SHM.is_dir() or not os.access(_SHM, os.W_OK):
            return None
        if fs_type(_SHM) not in MEMORY_FS:
            return None
        return _SHM if shutil.disk_usage(_SHM).free >= _NEEDED_BYTES else None
    except OSError:
        return None
