"""Where an export writes: a hidden folder inside ``--to`` (``STAGE``) whose files move to
their final names only once every one of them is whole. An error while writing (a full
disk, a read-only folder, an image that cannot be read) removes that folder, and ``--to``
when the export made it: no half-written file is left under a final name, and the same
command can run again (``--to`` is as it was: new or empty)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from batchgen.errors import UsageError

STAGE = ".batchgen-export-partial"


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """``out`` (a new or empty folder) made, a stage inside it yielded; on leaving without
    an error the stage's entries are renamed into ``out``; with one, every folder this made
    is removed. An OSError making ``out`` itself propagates as it is (the caller's --to
    message)."""
    made = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    stage = out / STAGE
    try:
        stage.mkdir()
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in made:  # deepest first: only the ones this made, only if empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    for entry in sorted(stage.iterdir()):
        entry.rename(out / entry.name)
    stage.rmdir()


def cannot(exc: OSError, stage: Path, out: Path) -> UsageError:
    """The one line for an OSError of the writing: the file under its final name (or the
    image that could not be read), the cause, and that nothing was exported."""
    cause = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    # pyarrow's and a tar's write errors name no file: the one being written is the newest
    name = Path(exc.filename) if exc.filename else _newest(stage)
    undone = f"nothing was exported ({out} is as it was)"
    if name is not None and name.is_relative_to(stage):
        where = out / name.relative_to(stage)
        return UsageError(
            f"cannot write {where}: {cause}; {undone}: free space there or give --to a "
            "folder you can write, then export again"
        )
    if name is not None:
        return UsageError(f"cannot read {name}: {cause}; {undone}")
    return UsageError(f"cannot write {out}: {cause}; {undone}")


def _newest(stage: Path) -> Path | None:
    files = [p for p in stage.rglob("*") if p.is_file()]
    return max(files, key=lambda p: (p.stat().st_mtime_ns, p.name)) if files else None


def leftover(out: Path) -> str:
    """What a not-empty --to holds, when it is only a killed export's stage."""
    if [p.name for p in out.iterdir()] == [STAGE]:
        return f" (it holds {out / STAGE}, left by an export that was stopped: remove it)"
    return ""
