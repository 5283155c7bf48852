"""Checks on every saved image: decodable, the requested size, not blank, not blurred, and
not a duplicate of an image made for a different prompt.

The verdicts come from stored measurements (``RUN_DIR/checks/``, see batchgen/checks/):
made while the run went, or by an earlier report. Only images with no stored measurement (a
run made before ingest checks, images the run left unchecked) are decoded, on a process pool,
and their measurements stored, so the next report decodes nothing. Thresholds apply to the
stored numbers: changing them needs no decoding. The duplicate search runs on stored hashes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from batchgen.analyze.load import read_columns
from batchgen.analyze.model import Finding, ImageChecks
from batchgen.checks.lookup import absolute, disk_sizes, stored_for, stored_rows

# re-exported: the measurements and the decompression-bomb guard live with the check workers
from batchgen.checks.measure import IMAGE_ERRORS as IMAGE_ERRORS
from batchgen.checks.measure import dhash as dhash
from batchgen.checks.measure import gray_thumb as gray_thumb
from batchgen.checks.measure import laplacian_var as laplacian_var
from batchgen.checks.measure import no_bombs as no_bombs
from batchgen.checks.record import Measured
from batchgen.runlog.schema import STATUS_OK
from batchgen.storage.cache import is_uri

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class CheckConfig:
    thumb_px: int = 256
    # std-dev of 0..255 grayscale below which an image is one flat colour (a blank render)
    blank_std: float = 4.0
    # variance of the 4-neighbour Laplacian on the thumbnail; sharp renders score in the
    # hundreds, a Gaussian blur of a few pixels brings it to single digits
    blur_laplacian_var: float = 20.0
    hash_size: int = 16  # dHash of 16×16 = 256 bits: few collisions between similar layouts
    dup_max_bits: int = 8  # near-same: at most this many of the 256 bits differ
    listed_max: int = 200


@dataclass(frozen=True, slots=True)
class SavedImage:
    path: str  # as logged (relative to the run directory when the writer made it so)
    file: Path  # where it is on disk
    job_id: str
    prompt: str
    size: str | None


def resolve_image(run_dir: Path, logged: str) -> Path:
    p = Path(logged)
    if p.is_absolute():
        return p
    direct = Path(run_dir) / p
    return direct if direct.exists() else Path(run_dir) / "images" / p.name


def saved_images(
    run_dir: Path, limit: int | None = None, *, resolve: bool = True
) -> Iterator[SavedImage]:
    """Every image of the ok rows, in log order. ``resolve=False``: ``file`` is left as the
    logged path (no stat per image; the checks list the images folder once instead)."""
    table = read_columns(
        run_dir, ["job_id", "prompt", "size", "image_paths"], filter=pc.field("status") == STATUS_OK
    )
    count = 0
    for batch in table.to_batches(max_chunksize=4096):
        for row in batch.to_pylist():
            for logged in row["image_paths"] or []:
                yield SavedImage(
                    logged,
                    resolve_image(run_dir, logged) if resolve else Path(logged),
                    row["job_id"] or "",
                    row["prompt"] or "",
                    row["size"],
                )
                count += 1
                if limit is not None and count >= limit:
                    return


def requested_dims(size: str | None) -> tuple[int, int] | None:
    """(width, height) of a WxH size; None for auto or anything else."""
    m = _SIZE.match(size or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


_gray_thumb = gray_thumb


DEFAULT_CHECKS = CheckConfig()


PROBLEMS = ("missing", "undecodable", "wrong_size", "blank", "blurred", "duplicate")


class _Tally:
    """The counts by problem, the first ``listed_max`` findings, and the images fit to be
    compared for duplicates (their dHash, and path, job and prompt)."""

    def __init__(self, config: CheckConfig) -> None:
        self.config = config
        self.counts = dict.fromkeys(PROBLEMS, 0)
        self.findings: list[Finding] = []
        self.hashes: list[tuple[int, int]] = []  # (hash, index into meta)
        self.meta: list[tuple[str, str, str]] = []  # (path, job_id, prompt)

    def flag(self, problem: str, path: str, job_id: str, detail: str) -> None:
        self.counts[problem] += 1
        if len(self.findings) < self.config.listed_max:
            self.findings.append(Finding(problem, path, job_id, detail))

    def compare_later(self, img: SavedImage, dhash: bytes) -> None:
        self.hashes.append((int.from_bytes(dhash, "big"), len(self.meta)))
        self.meta.append((img.path, img.job_id, img.prompt))


def check_images(
    run_dir: Path, config: CheckConfig = DEFAULT_CHECKS, *, measure: bool = True
) -> ImageChecks:
    """Evaluate every saved image against ``config``, from the stored measurements
    (``checks/``, made while the run went); images with none are measured now and stored, so
    the next report decodes nothing. ``measure=False`` evaluates only what is stored."""
    run_dir = absolute(run_dir)  # once: every file below is found from it
    images = list(saved_images(run_dir, resolve=False))
    # --images-to: objects are judged by what was measured as they were stored (checks/);
    # the report fetches none of them (an object without a measurement is "unmeasured")
    remote = {img.path for img in images if is_uri(img.path)}
    local = [img for img in images if img.path not in remote] if remote else images
    on_disk = disk_sizes(run_dir, local)
    found = stored_for(run_dir, local, on_disk, config, measure=measure)
    if remote:
        measured = stored_rows(run_dir, config)
        for path in remote:
            if path in measured:
                found.rows[path], found.stored = measured[path], found.stored + 1
            else:
                found.unmeasured += 1
    tally = _Tally(config)
    for img in images:
        if img.path not in on_disk and img.path not in remote:
            tally.flag(
                "missing", img.path, img.job_id, "the log lists it but the file is not there"
            )
            continue
        m = found.rows.get(img.path)
        if m is not None:  # None: not measured (measure=False): counted in "unmeasured"
            _check_one(img, m, tally)
    groups = _duplicate_groups(tally.hashes, tally.meta, config)
    for group in groups:
        for i in group:
            path, job_id, _ = tally.meta[i]
            others = [tally.meta[j][0] for j in group if j != i]
            tally.flag("duplicate", path, job_id, "same picture as " + ", ".join(others[:3]))
    return ImageChecks(
        enabled=True,
        checked=len(images),
        counts=tally.counts,
        flagged=sum(tally.counts.values()),
        findings=tuple(tally.findings),
        duplicate_groups=[[tally.meta[i][0] for i in g] for g in groups[: config.listed_max]],
        measured={
            "stored": found.stored,
            "now": found.measured_now,
            "unmeasured": found.unmeasured,
        },
    )


def _check_one(img: SavedImage, m: Measured, tally: _Tally) -> None:
    """One measured image against the config: undecodable, wrong size, blank, blurred; a
    sound one is kept for the duplicate search."""
    config = tally.config
    if m.error is not None or m.std is None or m.laplacian_var is None or m.dhash is None:
        tally.flag("undecodable", img.path, img.job_id, m.error or "no measurement stored")
        return
    want = requested_dims(img.size)
    if want is not None and (m.width, m.height) != want:
        detail = f"{m.width}x{m.height}, requested {img.size}"
        tally.flag("wrong_size", img.path, img.job_id, detail)
    if m.std < config.blank_std:
        detail = f"pixel std-dev {m.std:.2f} < {config.blank_std}"
        tally.flag("blank", img.path, img.job_id, detail)
        return  # a flat image is trivially "blurred" and "duplicate": say it once
    if m.laplacian_var < config.blur_laplacian_var:
        detail = f"Laplacian variance {m.laplacian_var:.1f} < {config.blur_laplacian_var}"
        tally.flag("blurred", img.path, img.job_id, detail)
    tally.compare_later(img, m.dhash)


def _duplicate_groups(
    hashes: list[tuple[int, int]], meta: list[tuple[str, str, str]], config: CheckConfig
) -> list[list[int]]:
    """Groups of near-same hashes whose prompts differ.  Identical hashes are one entry of the
    search (a batch of copies would make it quadratic); then pigeonhole: two hashes within
    dup_max_bits differ in at most that many of dup_max_bits+1 bands, so they share one band
    exactly; only hashes sharing a band are compared."""
    same: dict[int, list[int]] = defaultdict(list)  # hash → indexes into meta
    for h, i in hashes:
        same[h].append(i)
    unique = list(same)
    nbits = config.hash_size * config.hash_size
    nbands = config.dup_max_bits + 1
    edges = np.linspace(0, nbits, nbands + 1).astype(int)
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for pos, h in enumerate(unique):
        for b in range(nbands):
            width = edges[b + 1] - edges[b]
            buckets[(b, (h >> int(edges[b])) & ((1 << int(width)) - 1))].append(pos)
    parent = list(range(len(unique)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for members in buckets.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                if (unique[a] ^ unique[b]).bit_count() <= config.dup_max_bits:
                    parent[find(a)] = find(b)
    clusters: dict[int, list[int]] = defaultdict(list)
    for pos, h in enumerate(unique):
        clusters[find(pos)].extend(same[h])
    # n>1 images of one prompt may legitimately look alike; only different prompts count.
    return [sorted(c) for c in clusters.values() if len(c) > 1 and len({meta[i][2] for i in c}) > 1]
