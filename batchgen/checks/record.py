"""One image's measurements, as the workers return them and checks/ stores them. No numpy,
no Pillow here: the run's process imports this, the workers do the decoding."""

from __future__ import annotations

from typing import NamedTuple

THUMB_PX = 256
HASH_SIZE = 16


class Measured(NamedTuple):
    """One image's measurements; ``error`` is set (and the pixel fields are None) when the
    bytes do not decode, or the file could not be read."""

    path: str  # as the log names it (relative to the run directory)
    nbytes: int  # file size: with the path, the key of a stored measurement
    sha256: str | None
    error: str | None
    width: int | None
    height: int | None
    std: float | None
    laplacian_var: float | None
    dhash: bytes | None  # hash_size² bits, big-endian
