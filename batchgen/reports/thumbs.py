"""Thumbnails of a run's images for the HTML report, as data: URLs (decoded behind the
decompression-bomb guard): one way to show an image as its log row names it, a file of the run
directory or an object written by ``--images-to`` (its thumbnail cached under
RUN_DIR/cache/thumbs, so the next report reads the small local file)."""

from __future__ import annotations

import base64
import os
import urllib.parse
from pathlib import Path

from batchgen.analyze.images import resolve_image
from batchgen.checks.measure import read_image_file
from batchgen.storage.cache import is_uri, jpeg_thumbnail, thumbnail

THUMB_PX = 160


def thumb(path: Path) -> str | None:
    """None for a file that cannot be read, and for one that is not a regular file of an
    image's size (a FIFO would block the report, /dev/zero never end: checks.measure)."""
    try:
        data = read_image_file(str(path))
    except OSError:
        return None
    return _data_url(jpeg_thumbnail(data, THUMB_PX))


def _remote_thumb(run_dir: Path, uri: str) -> str | None:
    return _data_url(thumbnail(run_dir, uri, THUMB_PX))


def _data_url(jpeg: bytes | None) -> str | None:
    return None if jpeg is None else "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()


def picture(run_dir: Path, logged: str, out_dir: Path) -> tuple[str | None, str]:
    """The thumbnail (a data: URL; None when the image cannot be read) and the link of an image
    as its log row names it: a file of the run directory, or an object (``--images-to``),
    whose thumbnail is made once and cached under RUN_DIR/cache/thumbs and whose link is its
    URI. Every section that shows a run's images goes through here."""
    if is_uri(logged):
        return _remote_thumb(run_dir, logged), logged
    file = resolve_image(run_dir, logged)
    return thumb(file), link(file, out_dir)


def link(file: Path, out_dir: Path) -> str:
    return urllib.parse.quote(os.path.relpath(file.resolve(), out_dir.resolve()))
