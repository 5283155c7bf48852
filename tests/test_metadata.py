"""--metadata: a sidecar NAME.png.json beside each image by default; embed writes PNG iTXt and
JPEG/WebP XMP that Pillow reads, except into a file carrying a C2PA manifest, which keeps the
provider's bytes and gets a sidecar (here a hand-made ``caBX`` marker beside unsigned images in
one run; manifests signed by the C2PA tooling: tests/test_metadata_c2pa.py)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

from PIL import Image

from batchgen.cli.main import main
from batchgen.metadata import apply, has_c2pa, sidecar_path
from batchgen.metadata.containers import png_chunks
from tests.runhelpers import log_table, sim_flags

KEY = "sk-meta-0123456789"


def _run(tmp_path: Path, sim, *extra: str, fmt: str = "png", jobs: int = 3) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": f"a glass owl {i}",
                    "model": "gpt-image-1",
                    "quality": "low",
                    "output_format": fmt,
                }
            )
            + "\n"
            for i in range(jobs)
        )
    )
    run = tmp_path / "run"
    assert (
        main(["run", str(path), "--run-dir", str(run), *sim_flags(sim), "--yes", "--quiet", *extra])
        == 0
    )
    return run


def _images(run: Path) -> list[Path]:
    return sorted(p for p in (run / "images").iterdir() if not p.name.endswith(".json"))


def test_a_sidecar_beside_each_image_by_default(make_sim, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    run = _run(tmp_path, make_sim())
    # the run says where they are as they are named (it said "NAME.json": they are NAME.png.json)
    said = capsys.readouterr().out
    assert "metadata: 3 sidecars beside the images (the image's file name + .json)" in said
    assert all(sidecar_path(i).name == f"{i.name}.json" for i in _images(run))
    rows = {r["job_id"]: r for r in log_table(run).to_pylist() if r["status"] == "ok"}
    images = _images(run)
    assert len(images) == 3
    for image in images:
        meta = json.loads(sidecar_path(image).read_text())
        row = rows[meta["job_id"]]
        assert meta["prompt"] == row["prompt"] and meta["model"] == "gpt-image-1"
        assert meta["settings"]["quality"] == "low" and meta["run_id"] == row["run_id"]
        assert meta["cost_usd"] == row["cost_usd"] > 0
        assert KEY not in sidecar_path(image).read_text()
        assert b"iTXt" not in image.read_bytes()  # the image itself is as sent


def test_embed_png_itxt_and_jpeg_xmp_that_pillow_reads(make_sim, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    sim = make_sim()
    run = _run(tmp_path / "png", sim, "--metadata", "embed")
    for image in _images(run):
        assert not sidecar_path(image).exists()
        with Image.open(image) as im:
            meta = json.loads(im.text["batchgen"])
            im.load()  # still a valid PNG
        assert meta["prompt"].startswith("a glass owl") and meta["job_id"] in image.name
    run = _run(tmp_path / "jpeg", sim, "--metadata", "embed", fmt="jpeg")
    for image in _images(run):
        assert image.suffix == ".jpg" and not sidecar_path(image).exists()
        with Image.open(image) as im:
            xmp = im.info["xmp"]
            im.load()
        assert b"a glass owl" in xmp and b"batchgen:metadata" in xmp


def test_webp_xmp_embedded_unless_the_provider_wrote_its_own(make_sim, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    # the simulator's WebP carries its own XMP packet (one is allowed): kept, a sidecar instead
    run = _run(tmp_path, make_sim(), "--metadata", "none", fmt="webp", jobs=2)
    first, second = _images(run)
    provider_xmp = first.read_bytes()
    buf = io.BytesIO()
    Image.new("RGBA", (24, 16), (9, 9, 9, 128)).save(buf, "WEBP", lossless=True)
    second.write_bytes(buf.getvalue())  # a plain WebP, as providers without XMP send
    tally = apply(run, "embed")
    assert (tally.embedded, tally.other_sidecars) == (1, 1)
    assert first.read_bytes() == provider_xmp and sidecar_path(first).is_file()
    with Image.open(second) as im:
        xmp = im.info["xmp"]
        im.load()
        assert im.size == (24, 16) and im.mode == "RGBA"
    assert b"a glass owl" in xmp and b"batchgen:metadata" in xmp


def _with_cabx(png: bytes) -> bytes:
    """A C2PA-carrying PNG as OpenAI's look: a ``caBX`` chunk (a JUMBF superbox labelled c2pa)
    before the image data."""
    label = b"c2pa\x00"
    jumd = struct.pack(">I", 8 + 16 + 1 + len(label)) + b"jumd" + b"c2pa" + bytes(12) + b"\x03"
    box = jumd + label
    jumb = struct.pack(">I", 8 + len(box)) + b"jumb" + box
    chunk = struct.pack(">I", len(jumb)) + b"caBX" + jumb
    chunk += struct.pack(">I", zlib.crc32(b"caBX" + jumb) & 0xFFFFFFFF)
    idat = next(off for off, t in png_chunks(png) if t == b"IDAT")
    return png[:idat] + chunk + png[idat:]


def test_a_c2pa_png_keeps_its_bytes_and_gets_a_sidecar(make_sim, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    run = _run(tmp_path, make_sim(), "--metadata", "none")
    signed, plain = _images(run)[0], _images(run)[1:]
    signed.write_bytes(_with_cabx(signed.read_bytes()))
    before = signed.read_bytes()
    assert has_c2pa(before) and not any(has_c2pa(p.read_bytes()) for p in plain)
    tally = apply(run, "embed")
    assert (tally.embedded, tally.c2pa_sidecars) == (2, 1)
    assert signed.read_bytes() == before  # the manifest's bytes, untouched
    assert json.loads(sidecar_path(signed).read_text())["job_id"] in signed.name
    assert "C2PA" in tally.describe("embed")
    for image in plain:
        with Image.open(image) as im:
            assert "batchgen" in im.text


def test_c2pa_markers_in_jpeg_and_webp():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    jpeg = buf.getvalue()
    payload = b"JP" + b"\x00\x00" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x20jumb" + b"c2pa"
    app11 = b"\xff\xeb" + struct.pack(">H", len(payload) + 2) + payload
    assert not has_c2pa(jpeg) and has_c2pa(jpeg[:2] + app11 + jpeg[2:])
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "WEBP")
    webp = buf.getvalue()
    extra = b"C2PA" + struct.pack("<I", 4) + b"jumb"
    riff = webp[:4] + struct.pack("<I", len(webp) - 8 + len(extra)) + webp[8:] + extra
    assert not has_c2pa(webp) and has_c2pa(riff)
