"""A spec's ``images:`` glob, expanded without hanging: ``**`` walks folders without
following a symlink to a folder (``glob.glob(recursive=True)`` follows them, and a link to a
parent makes it loop for ever), and stops after ``MAX_GLOB_FILES`` files seen."""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Iterator
from pathlib import Path

_GLOB_CHARS = frozenset("*?[")
MAX_GLOB_FILES = 1_000_000


def glob_files(pattern: str) -> Iterator[Path]:
    """The regular files ``pattern`` matches (``**``: any depth; dotfiles skipped, as glob
    does); see the module doc."""
    if "**" not in pattern:
        for p in glob.glob(pattern):
            if Path(p).is_file():
                yield Path(p)
        return
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if _GLOB_CHARS & set(part))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    regex = re.compile(_translate(parts[fixed:]))
    seen = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(folder).relative_to(root)
        for name in files:
            seen += 1
            if seen > MAX_GLOB_FILES:
                return
            path = Path(folder) / name
            wanted = not name.startswith(".") and regex.fullmatch((rel / name).as_posix())
            if wanted and path.is_file():
                yield path


def _translate(parts: tuple[str, ...]) -> str:
    """A glob's parts as a regex over a relative POSIX path (``**`` spans folders)."""
    out: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        piece = fnmatch.translate(part)  # '(?s:...)\\Z'
        piece = piece[piece.index(":") + 1 : piece.rindex(")")].replace(".*", "[^/]*")
        out.append(piece.replace("(?s:", "(?:") + ("" if last else "/"))
    return "".join(out)
