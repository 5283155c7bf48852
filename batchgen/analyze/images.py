"""Checks on every saved image: decodable, the requested size, not blank, not blurred, and
not a duplicate of an image made for a different prompt.

Images are decoded one at a time into a small grayscale thumbnail (JPEG decodes straight to
it via ``Image.draft``), so memory stays flat however many images a run has; only a
perceptual hash per image is kept for the duplicate search.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from PIL import Image, UnidentifiedImageError

from batchgen.analyze.load import read_columns
from batchgen.runlog.schema import STATUS_OK

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
class Finding:
    problem: str  # undecodable / wrong_size / blank / blurred / duplicate / missing
    path: str
    job_id: str
    detail: str


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


def saved_images(run_dir: Path, limit: int | None = None) -> Iterator[SavedImage]:
    """Every image of the ok rows, in log order."""
    table = read_columns(
        run_dir, ["job_id", "prompt", "size", "image_paths"], filter=pc.field("status") == STATUS_OK
    )
    count = 0
    for batch in table.to_batches(max_chunksize=4096):
        for row in batch.to_pylist():
            for logged in row["image_paths"] or []:
                yield SavedImage(
                    logged,
                    resolve_image(run_dir, logged),
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


# what opening a saved image may raise: a broken file, or a decompression bomb (a small file
# whose header claims billions of pixels: Pillow warns past its limit and refuses past twice
# that; the warning is made an error here, so nothing that large is ever decoded)
IMAGE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


@contextlib.contextmanager
def no_bombs() -> Iterator[None]:
    """Inside: a decompression bomb raises (one of IMAGE_ERRORS) instead of being decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _gray_thumb(path: Path, px: int) -> tuple[tuple[int, int], np.ndarray]:
    with no_bombs(), Image.open(path) as im:
        dims = im.size  # before draft(), which shrinks JPEG decoding
        im.draft("L", (px, px))
        gray = im.convert("L")
    gray.thumbnail((px, px))
    return dims, np.asarray(gray, dtype=np.float32)


def laplacian_var(a: np.ndarray) -> float:
    if a.shape[0] < 3 or a.shape[1] < 3:
        return 0.0
    lap = 4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]
    return float(lap.var())


def dhash(a: np.ndarray, size: int) -> int:
    """Difference hash: is each pixel brighter than its right neighbour, on a
    (size+1)×size shrink of the grayscale image."""
    small = Image.fromarray(a.astype(np.uint8)).resize((size + 1, size), Image.Resampling.LANCZOS)
    s = np.asarray(small, dtype=np.int16)
    bits = (s[:, 1:] > s[:, :-1]).flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


DEFAULT_CHECKS = CheckConfig()


def check_images(run_dir: Path, config: CheckConfig = DEFAULT_CHECKS) -> dict[str, Any]:
    counts = dict.fromkeys(
        ("missing", "undecodable", "wrong_size", "blank", "blurred", "duplicate"), 0
    )
    findings: list[Finding] = []
    hashes: list[tuple[int, int]] = []  # (hash, index into meta) of images fit to compare
    meta: list[tuple[str, str, str]] = []  # (path, job_id, prompt)
    checked = 0

    def flag(problem: str, img: SavedImage, detail: str) -> None:
        counts[problem] += 1
        if len(findings) < config.listed_max:
            findings.append(Finding(problem, img.path, img.job_id, detail))

    for img in saved_images(run_dir):
        checked += 1
        if not img.file.exists():
            flag("missing", img, "the log lists it but the file is not there")
            continue
        try:
            dims, a = _gray_thumb(img.file, config.thumb_px)
        except IMAGE_ERRORS as exc:
            flag("undecodable", img, f"{type(exc).__name__}: {exc}")
            continue
        want = requested_dims(img.size)
        if want is not None and dims != want:
            flag("wrong_size", img, f"{dims[0]}x{dims[1]}, requested {img.size}")
        std = float(a.std())
        if std < config.blank_std:
            flag("blank", img, f"pixel std-dev {std:.2f} < {config.blank_std}")
            continue  # a flat image is trivially "blurred" and "duplicate": say it once
        lap = laplacian_var(a)
        if lap < config.blur_laplacian_var:
            flag("blurred", img, f"Laplacian variance {lap:.1f} < {config.blur_laplacian_var}")
        hashes.append((dhash(a, config.hash_size), len(meta)))
        meta.append((img.path, img.job_id, img.prompt))

    groups = _duplicate_groups(hashes, meta, config)
    for group in groups:
        for i in group:
            path, job_id, _ = meta[i]
            counts["duplicate"] += 1
            if len(findings) < config.listed_max:
                others = [meta[j][0] for j in group if j != i]
                findings.append(
                    Finding("duplicate", path, job_id, "same picture as " + ", ".join(others[:3]))
                )
    return {
        "checked": checked,
        "counts": counts,
        "flagged": sum(counts.values()),
        "findings": [asdict(f) for f in findings],
        "duplicate_groups": [[meta[i][0] for i in g] for g in groups[: config.listed_max]],
    }


def _duplicate_groups(
    hashes: list[tuple[int, int]], meta: list[tuple[str, str, str]], config: CheckConfig
) -> list[list[int]]:
    """Groups of near-same hashes whose prompts differ.  Pigeonhole: two hashes within
    dup_max_bits differ in at most that many of dup_max_bits+1 bands, so they share one
    band exactly; only images sharing a band are compared."""
    nbits = config.hash_size * config.hash_size
    nbands = config.dup_max_bits + 1
    edges = np.linspace(0, nbits, nbands + 1).astype(int)
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for pos, (h, _) in enumerate(hashes):
        for b in range(nbands):
            width = edges[b + 1] - edges[b]
            buckets[(b, (h >> int(edges[b])) & ((1 << int(width)) - 1))].append(pos)
    parent = list(range(len(hashes)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for members in buckets.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                if (hashes[a][0] ^ hashes[b][0]).bit_count() <= config.dup_max_bits:
                    parent[find(a)] = find(b)
    clusters: dict[int, list[int]] = defaultdict(list)
    for pos in range(len(hashes)):
        clusters[find(pos)].append(hashes[pos][1])
    # n>1 images of one prompt may legitimately look alike; only different prompts count.
    return [sorted(c) for c in clusters.values() if len(c) > 1 and len({meta[i][2] for i in c}) > 1]
