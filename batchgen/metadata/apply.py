"""``--metadata sidecar|embed|none``: after a session, each image it saved gets its record —
prompt, model, settings, run and job id, session, cost (and score, once scored) — as a
``NAME.json`` sidecar beside it (the default), or embedded (PNG ``iTXt``; JPEG and WebP XMP)
**only when the file carries no C2PA manifest**: adding a byte to a signed file invalidates
its content credential, so such a file keeps the provider's bytes and gets a sidecar, and the
tally says how many fell back. Embedding rewrites the file atomically (temp + rename)."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from batchgen.metadata import containers
from batchgen.numbers import plural
from batchgen.runlog.files import visible_files
from batchgen.runlog.fsio import atomic_write_bytes
from batchgen.runlog.schema import STATUS_OK
from batchgen.storage.cache import store
from batchgen.storage.remote import clean

MODES = ("sidecar", "embed", "none")
KEYWORD = "batchgen"  # the PNG iTXt keyword
_COLUMNS = [
    "run_id",
    "session",
    "job_id",
    "attempt",
    "status",
    "model",
    "prompt",
    "size",
    "quality",
    "n",
    "params",
    "vars",
    "image_paths",
    "cost_usd",
    "revised_prompt",
    "provider",
    "endpoint",
]


@dataclass(slots=True)
class Tally:
    sidecars: int = 0
    embedded: int = 0
    c2pa_sidecars: int = 0  # embed asked, a C2PA manifest found: a sidecar instead
    other_sidecars: int = 0  # embed asked, a format it cannot write: a sidecar instead
    damaged_sidecars: int = 0  # embed asked, a PNG/JPEG/WebP cut short: a sidecar instead
    object_sidecars: int = 0  # images at --images-to: a sidecar object URI.json beside each
    errors: list[str] = field(default_factory=list)

    def describe(self, mode: str) -> str:
        if mode == "sidecar":
            sidecars = plural(self.sidecars, "sidecar")
            return f"metadata: {sidecars} beside the images (the image's file name + .json)"
        text = f"metadata: {plural(self.embedded, 'image')} embedded"
        if self.object_sidecars:
            text += (
                f"; {self.object_sidecars} stored at --images-to: a sidecar object (the "
                "object's name + .json) beside each (an uploaded object is not rewritten)"
            )
        if self.c2pa_sidecars:
            text += (
                f"; {self.c2pa_sidecars} carry a C2PA manifest (a signed content "
                "credential): left as sent, a sidecar (the image's file name + .json) instead"
            )
        if self.damaged_sidecars:
            text += (
                f"; {self.damaged_sidecars} damaged (cut short?): left as they are, a sidecar "
                "(the image's file name + .json) instead"
            )
        if self.other_sidecars:
            text += (
                f"; {self.other_sidecars} in a format it cannot embed into, or already "
                "holding the provider's XMP: sidecars"
            )
        return text


def _loads(text: str) -> Any:
    """orjson (~5x the standard library's speed), and the standard library for what JSON
    allows and orjson refuses (NaN, an integer beyond 64 bits)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def record_of(row: dict[str, Any], index: int, count: int) -> dict[str, Any]:
    cost = row.get("cost_usd")
    params = _loads(row["params"]) if row.get("params") else None
    return {
        "prompt": row.get("prompt"),
        "revised_prompt": row.get("revised_prompt"),
        "model": row.get("model"),
        "settings": {
            "size": row.get("size"),
            "quality": row.get("quality"),
            "n": row.get("n"),
            "params": params,
        },
        "vars": _loads(row["vars"]) if row.get("vars") else None,
        "run_id": row.get("run_id"),
        "job_id": row.get("job_id"),
        "session": row.get("session"),
        "attempt": row.get("attempt"),
        "image_index": index,
        "provider": row.get("endpoint") or row.get("provider"),
        "cost_usd": (cost / count) if cost is not None and count else None,
        "score": None,
        "tool": "batchgen",
    }


def sidecar_path(image: Path) -> Path:
    """``images/NAME.png`` → ``images/NAME.png.json`` (never a name the image scan adopts)."""
    return image.with_name(image.name + ".json")


def apply(run_dir: Path | str, mode: str, session: int | None = None) -> Tally:
    """Write the records of ``session``'s ok images (every session's when None)."""
    tally = Tally()
    if mode == "none":
        return tally
    root = Path(run_dir)
    folder = os.fspath(root)
    log_dir = root / "log"
    if not log_dir.is_dir():
        return tally
    # plain Parquet batches and a filter in Python: a run imports neither pyarrow.compute
    # nor pandas (tests/test_startup.py), and this pass runs at the end of every run
    for log_file in visible_files(log_dir):
        for row in _rows(log_file.path, session):
            paths = row["image_paths"] or []
            for i, rel in enumerate(paths):
                if "://" in rel:  # an object of --images-to (batchgen.storage.cache.is_uri)
                    _object_sidecar(rel, record_of(row, i, len(paths)), tally)
                    continue
                image = f"{folder}/{rel}"  # plain str paths: pathlib costs more than the write
                if os.path.isfile(image):
                    try:
                        _one(image, record_of(row, i, len(paths)), mode, tally)
                    except OSError as exc:
                        tally.errors.append(f"{rel}: {exc}")
    return tally


def _rows(path: Path, session: int | None = None) -> Any:
    """The part's ok rows (of ``session`` when given), as dicts of ``_COLUMNS``. Read a
    column at a time and filtered on the status (and session) columns before any row is
    built: a dict per row only for the rows that get a record (a third of the time of
    ``RecordBatch.to_pylist`` on every row)."""
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError):
        return  # a damaged part: resume quarantines it; its images get no record here
    names = set(parquet.schema_arrow.names)
    columns = [c for c in _COLUMNS if c in names]
    for batch in parquet.iter_batches(batch_size=4096, columns=columns):
        values = {name: batch.column(name).to_pylist() for name in columns}
        status, sessions = values.get("status"), values.get("session")
        if status is None:
            continue
        keep = [
            i
            for i, s in enumerate(status)
            if s == STATUS_OK and (session is None or (sessions and sessions[i] == session))
        ]
        for i in keep:
            yield {name: column[i] for name, column in values.items()}


def _one(image: str, record: dict[str, Any], mode: str, tally: Tally) -> None:
    # UTF-8, keys sorted, compact (a third of the standard library's time)
    encoded = _dumps(record)
    if mode == "embed":
        text = encoded.decode()
        data = Path(image).read_bytes()
        if containers.damaged(data):  # before has_c2pa, which takes it for a signed file
            tally.damaged_sidecars += 1
        elif containers.has_c2pa(data):
            tally.c2pa_sidecars += 1
        else:
            embedded = _embedded(data, text, record)
            if embedded is not None:
                atomic_write_bytes(Path(image), embedded)
                tally.embedded += 1
                return
            tally.other_sidecars += 1
    _write_sidecar(image, encoded + b"\n")
    tally.sidecars += 1


def _object_sidecar(uri: str, record: dict[str, Any], tally: Tally) -> None:
    """``URI.json`` beside an image stored at --images-to (both modes: embedding would mean
    rewriting an object the upload journal has by its size and sha256). Such images got no
    record at all before, and nothing said so."""
    try:
        store(f"{uri}.json", _dumps(record) + b"\n")
    except Exception as exc:  # any backend's error: said, the run's result stands
        tally.errors.append(f"{uri}.json: {type(exc).__name__}: {clean(exc)}")
        return
    tally.sidecars += 1
    tally.object_sidecars += 1


def _dumps(record: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits (a params value): the standard library
        return json.dumps(record, ensure_ascii=False, sort_keys=True).encode()


# a new regular file, never through a symlink planted at the temp name
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)


def _write_sidecar(image: str, data: bytes) -> None:
    """``NAME.json`` beside the image: temp + rename (never a torn sidecar), without fsync: a
    sidecar is rebuilt from the log (``batchgen.metadata.apply``), and a run of 100,000 images
    should not wait on 200,000 fsyncs. An embedded image is written with fsync
    (atomic_write_bytes): it is the image. Plain ``os`` calls on ``str`` paths, as images are
    saved (batchgen.images.save): pathlib and a buffered file cost more than the write."""
    folder, _, name = image.rpartition("/")
    tmp, final = f"{folder}/.{name}.json.tmp", f"{image}.json"
    try:
        fd = os.open(tmp, _CREATE, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _embedded(data: bytes, text: str, record: dict[str, Any]) -> bytes | None:
    kind = containers.kind(data)
    fields = {"prompt": str(record.get("prompt") or ""), "metadata": text}
    try:
        if kind == "png":
            return containers.png_with_itxt(data, KEYWORD, text)
        if kind == "jpeg":
            return containers.jpeg_with_xmp(data, containers.xmp_packet(fields))
        if kind == "webp":
            # lazy: Pillow (~30 ms) reads a WebP's size for --metadata embed only; every run's
            # body imports this module (cli/commands/notify) and a run loads no Pillow otherwise
            from PIL import Image

            with Image.open(io.BytesIO(data)) as im:
                width, height, alpha = im.width, im.height, "A" in im.getbands()
            packet = containers.xmp_packet(fields)
            return containers.webp_with_xmp(data, packet, width, height, alpha)
    except (ValueError, OSError):
        return None
    return None
