"""For a report: find each saved image's stored measurement, measure the ones that have none
(or whose file changed size), store those, and hand back one measurement per image."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from batchgen.checks.ingest import default_workers, make_executor
from batchgen.checks.measure import Measured, measure_batch
from batchgen.checks.store import ChecksWriter, compact, read_store

log = logging.getLogger(__name__)

INLINE_MAX = 16  # this few to measure: in this process, no pool to start
BATCH = 16
STORE_EVERY = 2_000  # rows: an interrupted report keeps what it measured


class _Image(Protocol):
    @property
    def path(self) -> str: ...  # as logged


class _Config(Protocol):
    @property
    def thumb_px(self) -> int: ...
    @property
    def hash_size(self) -> int: ...


@dataclass(slots=True)
class Found:
    rows: dict[str, Measured] = field(default_factory=dict)  # logged path → measurement
    stored: int = 0  # taken from checks/
    measured_now: int = 0  # decoded by this call (and stored)
    unmeasured: int = 0  # on disk, with no measurement (measure=False)


def _locate(run_dir: Path, logged: str, listing: dict[str, int] | None) -> tuple[str, int] | None:
    """(file, size) of a logged image path, or None if it is not on disk. Same resolution as
    the report always used: absolute as is, else under the run dir, else images/<name>."""
    p = Path(logged)
    if p.is_absolute():
        candidates = [str(p)]
    else:
        if listing is not None and p.parent == Path("images"):
            size = listing.get(p.name)
            return None if size is None else (str(run_dir / p), size)
        candidates = [str(run_dir / p), str(run_dir / "images" / p.name)]
    for c in candidates:
        try:
            return c, os.stat(c).st_size
        except OSError:
            continue
    return None


def _listing(images_dir: Path) -> dict[str, int] | None:
    """name → size of every visible file in images/ (one scandir, not a stat per path)."""
    try:
        with os.scandir(images_dir) as it:
            out = {}
            for e in it:
                if not e.name.startswith("."):
                    try:
                        out[e.name] = e.stat(follow_symlinks=True).st_size
                    except OSError:
                        continue
            return out
    except OSError:
        return None


def absolute(run_dir: Path | str) -> Path:
    """The run directory as an absolute path, resolved once: the files found from it are
    absolute, and never joined to the run directory a second time (a relative ``runs/demo``
    made ``runs/demo/runs/demo/images/...``), whatever the current directory of a worker."""
    return Path(os.path.abspath(run_dir))


def disk_sizes(run_dir: Path | str, images: Iterable[_Image]) -> dict[str, tuple[str, int]]:
    """logged path → (absolute file, size) of every image that is on disk."""
    run_dir = absolute(run_dir)
    listing = _listing(run_dir / "images")
    out = {}
    for img in images:
        where = _locate(run_dir, img.path, listing)
        if where is not None:
            out[img.path] = where
    return out


def stored_rows(run_dir: Path | str, config: _Config) -> dict[str, Measured]:
    names = ["path", "bytes", "error", "width", "height", "std", "laplacian_var", "dhash"]
    t = read_store(run_dir, config.thumb_px, config.hash_size, columns=names)
    cols = [t[c].to_pylist() for c in names]
    # sha256 is not needed for a verdict: left out, it saves ~110 bytes per image in memory
    return {
        p: Measured(p, n, None, e, w, h, s, lv, d)
        for p, n, e, w, h, s, lv, d in zip(*cols, strict=True)
    }


def stored_for(
    run_dir: Path | str,
    images: Iterable[_Image],
    on_disk: dict[str, tuple[str, int]],
    config: _Config,
    *,
    measure: bool = True,
    workers: int | None = None,
) -> Found:
    found = Found()
    stored = stored_rows(run_dir, config)
    todo: dict[str, str] = {}  # logged path → file, each image once
    for img in images:
        where = on_disk.get(img.path)
        if where is None or img.path in found.rows or img.path in todo:
            continue
        m = stored.get(img.path)
        if m is not None and m.nbytes == where[1]:
            found.rows[img.path] = m
            found.stored += 1
        else:
            todo[img.path] = where[0]
    if not todo:
        return found
    if not measure:
        found.unmeasured = len(todo)
        return found
    for m in _measure_and_store(absolute(run_dir), list(todo.items()), config, workers):
        found.rows[m.path] = m
        found.measured_now += 1
    return found


def _measure(
    run_dir: Path, items: list[tuple[str, str]], config: _Config, workers: int | None
) -> Iterator[list[Measured]]:
    args = (str(run_dir), config.thumb_px, config.hash_size)
    if len(items) <= INLINE_MAX:
        yield measure_batch(args[0], list(items), *args[1:])
        return

    n = workers or default_workers()
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    pool = make_executor("process", n, nice=False)
    try:
        # a few batches per worker in flight: an interrupted report stops at once
        todo = iter(batches)
        running = {pool.submit(measure_batch, args[0], b, *args[1:]) for b in _take(todo, 2 * n)}
        while running:
            done, running = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for b in _take(todo, len(done)):
                running.add(pool.submit(measure_batch, args[0], b, *args[1:]))
            for fut in done:
                yield fut.result()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # the workers are stopped, not waited for
        raise
    pool.shutdown(wait=True)


def _take(it: Iterator[list[tuple[str, str]]], k: int) -> list[list[tuple[str, str]]]:
    out = []
    for _ in range(k):
        b = next(it, None)
        if b is None:
            break
        out.append(b)
    return out


def _measure_and_store(
    run_dir: Path, items: list[tuple[str, str]], config: _Config, workers: int | None
) -> Iterator[Measured]:
    writer = ChecksWriter.for_report(run_dir, thumb_px=config.thumb_px, hash_size=config.hash_size)
    can_store = True

    def store() -> None:
        nonlocal can_store
        if not can_store:
            return
        try:
            writer.flush()
        except OSError as exc:  # a read-only run dir: the report still works, unstored
            can_store = False
            log.warning("cannot store image measurements in %s: %s", writer.folder, exc)

    try:
        for batch in _measure(run_dir, items, config, workers):
            writer.add(batch)
            yield from batch
            if writer.pending >= STORE_EVERY:
                store()
    finally:
        store()  # interrupted or not: what was measured is kept
    if can_store:
        try:
            compact(run_dir)
        except OSError as exc:
            log.warning("cannot compact %s: %s", writer.folder, exc)
