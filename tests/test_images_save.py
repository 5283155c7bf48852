"""Saving an answer's images: whole files under their final names, and the header read of
``image_header`` agreeing with ``sniff_ext`` + ``image_pixels``."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pytest
from PIL import Image

from batchgen.images import ImageData, image_header, image_pixels, save_images, sniff_ext


def _encoded(fmt: str, size: tuple[int, int] = (3, 2)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size).save(out, format=fmt)
    return out.getvalue()


def test_short_writes_still_leave_the_whole_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a regular file on a local disk takes a whole write; a network file system or a
    # signal may not: the rest is written, never left out (os.write cut to 7 bytes a call)
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    data = _encoded("PNG") * 3
    paths, total = save_images(tmp_path, "j1", [ImageData(data, "png")])
    assert paths == ["images/j1_0.png"] and total == len(data)
    assert (tmp_path / "j1_0.png").read_bytes() == data
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    "data",
    [
        _encoded("PNG"),
        _encoded("GIF", (5, 7)),
        _encoded("JPEG", (9, 4)),
        _encoded("WEBP", (6, 6)),
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 4 + b"IHDR" + struct.pack(">II", 10**5, 10**5),
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 4 + b"IHDR",  # cut before its size
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 30,  # no IHDR where it belongs
        b"not an image at all",
        b"",
    ],
)
def test_image_header_is_sniff_ext_and_image_pixels_in_one(data: bytes) -> None:
    ext = sniff_ext(data)
    assert image_header(data) == (ext, None if ext is None else image_pixels(data, ext))
