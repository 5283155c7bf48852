"""The formats, each a streaming writer over :func:`records.iter_records`: one image in memory
at a time (plus a Parquet row group of ``ROWS_PER_GROUP`` images).

* ``jsonl`` / ``csv``: a manifest of paths and metadata (the images stay where they are);
* ``parquet``: one table, the image bytes in a ``image_bytes`` column;
* ``hf``: Parquet shards ``data/train-XXXXX-of-YYYYY.parquet`` whose ``image`` column is a
  Hugging Face ``Image`` feature (struct of bytes + path, the features in the schema's
  ``huggingface`` metadata), so ``datasets.load_dataset("parquet", data_dir=…)`` decodes it;
* ``webdataset``: tar shards ``shard-XXXXXX.tar`` of ``KEY.png`` + ``KEY.json`` pairs.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batchgen.storage.cache import fetch, is_uri

FORMATS = ("hf", "webdataset", "parquet", "csv", "jsonl")
ROWS_PER_GROUP = 64
META = [
    "key",
    "job_id",
    "image_index",
    "prompt",
    "revised_prompt",
    "model",
    "quality",
    "size",
    "vars",
    "score",
    "defects",
    "cost_usd",
    "latency_s",
    "run_id",
]
_META_TYPES = {
    "key": pa.string(),
    "job_id": pa.string(),
    "image_index": pa.int32(),
    "prompt": pa.string(),
    "revised_prompt": pa.string(),
    "model": pa.string(),
    "quality": pa.string(),
    "size": pa.string(),
    "vars": pa.string(),
    "score": pa.float64(),
    "defects": pa.list_(pa.string()),
    "cost_usd": pa.float64(),
    "latency_s": pa.float64(),
    "run_id": pa.string(),
}
_HF_META = {
    "key": "string",
    "job_id": "string",
    "image_index": "int32",
    "prompt": "string",
    "revised_prompt": "string",
    "model": "string",
    "quality": "string",
    "size": "string",
    "vars": "string",
    "score": "float64",
    "cost_usd": "float64",
    "latency_s": "float64",
    "run_id": "string",
}


def _flat(rec: dict[str, Any]) -> dict[str, Any]:
    """The metadata columns, vars as JSON text (its keys differ between specs)."""
    out = {k: rec.get(k) for k in META}
    if out["vars"] is not None:
        out["vars"] = json.dumps(out["vars"], sort_keys=True, ensure_ascii=False)
    return out


def write_manifest(records: Iterable[dict[str, Any]], out: Path, fmt: str) -> int:
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    if fmt == "jsonl":
        with (out / "manifest.jsonl").open("w", encoding="utf-8") as f:
            for rec in records:
                f.write(
                    json.dumps(
                        {"path": rec["path"], "file": rec["file"], **_flat(rec)}, ensure_ascii=False
                    )
                    + "\n"
                )
                count += 1
        return count
    with (out / "manifest.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "file", *META])
        writer.writeheader()
        for rec in records:
            row = {"path": rec["path"], "file": rec["file"], **_flat(rec)}
            row["defects"] = ";".join(row["defects"] or [])
            writer.writerow(row)
            count += 1
    return count


def _groups(records: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    group: list[dict[str, Any]] = []
    for rec in records:
        group.append(rec)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def _parquet_schema(image_type: pa.DataType, name: str, hf: bool) -> pa.Schema:
    fields = [pa.field(name, image_type), *(pa.field(k, t) for k, t in _META_TYPES.items())]
    schema = pa.schema(fields)
    if hf:
        features: dict[str, Any] = {"image": {"_type": "Image"}}
        for k, dtype in _HF_META.items():
            features[k] = {"dtype": dtype, "_type": "Value"}
        features["defects"] = {
            "feature": {"dtype": "string", "_type": "Value"},
            "_type": "Sequence",
        }
        meta = {"info": {"features": features}}
        schema = schema.with_metadata({b"huggingface": json.dumps(meta).encode()})
    return schema


def write_parquet(
    records: Iterable[dict[str, Any]], out: Path, *, hf: bool, shard_images: int
) -> int:
    """``parquet``: out/images.parquet; ``hf``: out/data/train-*.parquet of ``shard_images``."""
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())]) if hf else pa.binary()
    name = "image" if hf else "image_bytes"
    schema = _parquet_schema(image_type, name, hf)
    folder = out / "data" if hf else out
    folder.mkdir(parents=True, exist_ok=True)
    shards: list[Path] = []
    writer: pq.ParquetWriter | None = None
    in_shard = count = 0
    try:
        # row groups that fill a shard exactly: the largest divisor of shard_images <= 64
        size = next(
            g for g in range(min(ROWS_PER_GROUP, shard_images), 0, -1) if shard_images % g == 0
        )
        for group in _groups(records, size if hf else ROWS_PER_GROUP):
            for rec in group:
                data = _image_bytes(rec)
                rec["_image"] = {"bytes": data, "path": Path(rec["file"]).name} if hf else data
            cols = {name: [r.pop("_image") for r in group]}
            cols.update({k: [_flat(r)[k] for r in group] for k in META})
            table = pa.Table.from_pydict(cols, schema=schema)
            if writer is None or (hf and in_shard >= shard_images):
                if writer is not None:
                    writer.close()
                shards.append(
                    folder / (f".part-{len(shards):05d}.parquet" if hf else "images.parquet")
                )
                writer = pq.ParquetWriter(shards[-1], schema)
                in_shard = 0
            writer.write_table(table)
            in_shard += len(group)
            count += len(group)
    finally:
        if writer is not None:
            writer.close()
    if hf:  # the -of- count is known only now
        for i, path in enumerate(shards):
            path.rename(folder / f"train-{i:05d}-of-{len(shards):05d}.parquet")
    return count


def write_webdataset(records: Iterable[dict[str, Any]], out: Path, *, shard_images: int) -> int:
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    tar: tarfile.TarFile | None = None
    shard = 0
    try:
        for rec in records:
            if tar is None or (count % shard_images == 0 and count):
                if tar is not None:
                    tar.close()
                tar = tarfile.open(out / f"shard-{shard:06d}.tar", "w")  # noqa: SIM115
                shard += 1
            ext = rec["ext"] or "png"
            _add(tar, f"{rec['key']}.{ext}", _image_bytes(rec))
            meta = json.dumps({"file": rec["file"], **_flat(rec)}, ensure_ascii=False)
            _add(tar, f"{rec['key']}.json", meta.encode())
            count += 1
    finally:
        if tar is not None:
            tar.close()
    return count


def _image_bytes(rec: dict[str, Any]) -> bytes:
    """The image a record names: a file of the run, or an object of --images-to (its URI)."""
    where = rec["path"]
    return fetch(where) if is_uri(where) else Path(where).read_bytes()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
