"""Saving an answer's images: whole files under their final names."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from batchgen.images import ImageData, save_images


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
