"""The measurements of one image, from its bytes: decodable, pixel size, grayscale std-dev
(blank), Laplacian variance (blur) and a perceptual hash (duplicates).

Only measurements are kept, never verdicts: the thresholds (``CheckConfig``) are applied when
a report is made, so changing them re-evaluates the stored numbers without decoding again.
Two parameters shape the numbers themselves (the thumbnail edge and the hash size); a stored
measurement made with others is measured again.

The decoding (numpy, Pillow) happens in the checker's worker processes; the run's process
never imports this module (see worker.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from batchgen.checks.record import HASH_SIZE, THUMB_PX, Measured

__all__ = [
    "HASH_SIZE",
    "IMAGE_ERRORS",
    "THUMB_PX",
    "Measured",
    "dhash",
    "gray_thumb",
    "laplacian_var",
    "measure_batch",
    "measure_bytes",
    "measure_file",
    "no_bombs",
    "read_image_file",
]


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


def gray_thumb(
    source: str | os.PathLike[str] | io.BytesIO, px: int
) -> tuple[tuple[int, int], np.ndarray]:
    """(width, height) before shrinking, and a grayscale thumbnail of at most px × px."""
    with no_bombs(), Image.open(source) as im:
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


def dhash_bits(a: np.ndarray, size: int) -> bytes:
    """Difference hash: is each pixel brighter than its right neighbour, on a
    (size+1)×size shrink of the grayscale image."""
    small = Image.fromarray(a.astype(np.uint8)).resize((size + 1, size), Image.Resampling.LANCZOS)
    s = np.asarray(small, dtype=np.int16)
    return np.packbits((s[:, 1:] > s[:, :-1]).flatten()).tobytes()


def dhash(a: np.ndarray, size: int) -> int:
    return int.from_bytes(dhash_bits(a, size), "big")


def measure_bytes(
    path: str, data: bytes, thumb_px: int = THUMB_PX, hash_size: int = HASH_SIZE
) -> Measured:
    digest = hashlib.sha256(data).hexdigest()
    try:
        dims, a = gray_thumb(io.BytesIO(data), thumb_px)
    except IMAGE_ERRORS as exc:
        return Measured(path, len(data), digest, f"{type(exc).__name__}: {exc}", *[None] * 5)
    return Measured(
        path,
        len(data),
        digest,
        None,
        dims[0],
        dims[1],
        float(a.std()),
        laplacian_var(a),
        dhash_bits(a, hash_size),
    )


def measure_file(
    run_dir: str, path: str, thumb_px: int = THUMB_PX, hash_size: int = HASH_SIZE
) -> Measured:
    """Read and measure ``run_dir/path`` (a logged path; absolute paths are taken as they are)."""
    full = path if os.path.isabs(path) else os.path.join(run_dir, path)
    try:
        data = read_image_file(full)
    except OSError as exc:
        return Measured(path, -1, None, f"unreadable: {type(exc).__name__}: {exc}", *[None] * 5)
    return measure_bytes(path, data, thumb_px, hash_size)


# no image batchgen saves comes near this (an answer is capped at 128 MB, a download at 64 MB)
MAX_FILE_BYTES = 256 * 1024 * 1024
_OPEN = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


class NotAnImageFile(OSError):
    """A logged image path that is not a regular file of a plausible size."""


def read_image_file(full: str) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES. A FIFO put (or symlinked) in
    images/ would block the report forever, /dev/zero would never end: both are refused
    before a byte is read (opened without blocking, then checked by fstat)."""
    fd = os.open(full, _OPEN)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            msg = "not a regular file (a pipe, a device or a socket): replace it with the image"
            raise NotAnImageFile(msg)
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise NotAnImageFile(
            f"larger than {MAX_FILE_BYTES // 2**20} MB: not an image batchgen saved"
        )
    return data


def measure_batch(
    run_dir: str, items: Sequence[tuple[str, str | bytes]], thumb_px: int, hash_size: int
) -> list[Measured]:
    """Worker entry point: ``items`` are (logged path, the image's bytes or the file to read).
    A process worker is given file names (the page cache has the bytes: a pipe would copy
    them twice), a thread worker the bytes themselves."""
    out = []
    for logged, source in items:
        if isinstance(source, bytes):
            out.append(measure_bytes(logged, source, thumb_px, hash_size))
        else:
            out.append(measure_file(run_dir, source, thumb_px, hash_size)._replace(path=logged))
    return out
