"""--metadata embed over images signed with a real C2PA manifest (tests/data/c2pa/: a PNG and a
JPEG signed by c2pa-python, README there): the provider (the simulator serving the fixture's
bytes, ``image_file``) sends a signed file, the run keeps its bytes exactly and writes a
sidecar, and the manifest validates as before. The reading parts use c2pa-python (the test
extra) and skip without it; the byte and marker checks run everywhere."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from batchgen.cli.main import main
from batchgen.metadata import has_c2pa, sidecar_path
from batchgen.metadata.containers import (
    jpeg_segments,
    jpeg_with_xmp,
    png_chunks,
    png_with_itxt,
    xmp_packet,
)
from tests.runhelpers import log_table, sim_flags

KEY = "sk-c2pa-0123456789"
FIXTURES = Path(__file__).parent / "data" / "c2pa"
SIGNED = {
    "png": (FIXTURES / "signed.png", "image/png"),
    "jpeg": (FIXTURES / "signed.jpg", "image/jpeg"),
}


def _validation(data: bytes, mime: str) -> tuple[str, list[str]]:
    """c2pa-python's verdict: the validation state and the active manifest's failure codes."""
    c2pa = pytest.importorskip("c2pa", reason="c2pa-python (the test extra) reads the manifest")
    with c2pa.Reader(mime, io.BytesIO(data)) as reader:
        state = reader.get_validation_state()
        results = reader.get_validation_results() or {}
    failures = [f["code"] for f in results.get("activeManifest", {}).get("failure", [])]
    return state, sorted(failures)


def _strip_png_chunk(data: bytes, ctype: bytes) -> bytes:
    for off, t in png_chunks(data):
        if t == ctype:
            (length,) = struct.unpack(">I", data[off : off + 4])
            return data[:off] + data[off + 12 + length :]
    raise AssertionError(f"no {ctype!r} chunk")


def test_our_marker_check_finds_the_real_c2pa_layout():
    png = SIGNED["png"][0].read_bytes()
    chunks = [t for _, t in png_chunks(png)]  # walks to IEND: not the "cannot walk" fallback
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
    assert chunks.index(b"caBX") < chunks.index(b"IDAT")
    assert has_c2pa(png) and not has_c2pa(_strip_png_chunk(png, b"caBX"))
    jpeg = SIGNED["jpeg"][0].read_bytes()
    app11 = [p for _, m, p in jpeg_segments(jpeg) if m == 0xEB]
    assert app11 and app11[0][:2] == b"JP" and b"jumb" in app11[0] and b"c2pa" in app11[0]
    assert has_c2pa(jpeg)
    plain = b"".join(
        jpeg[off : off + 4 + len(p)] if m != 0xEB else b"" for off, m, p in jpeg_segments(jpeg)
    )
    end = max(off + 4 + len(p) for off, _, p in jpeg_segments(jpeg))
    assert not has_c2pa(jpeg[:2] + plain + jpeg[end:])


def test_the_fixtures_are_signed_and_an_embed_would_break_them():
    """The control: the fixture is what the guard protects. c2pa-python reads a Valid manifest
    (untrusted only because the fixture root is in no trust list), and the very embed that
    batchgen writes into an unsigned file turns it Invalid."""
    for fmt, (path, mime) in SIGNED.items():
        data = path.read_bytes()
        state, failures = _validation(data, mime)
        assert state == "Valid" and failures == ["signingCredential.untrusted"], (fmt, failures)
        if fmt == "png":
            touched = png_with_itxt(data, "batchgen", '{"prompt": "x"}')
        else:
            touched = jpeg_with_xmp(data, xmp_packet({"prompt": "x"}))
        state, failures = _validation(touched, mime)
        assert state == "Invalid" and "assertion.dataHash.mismatch" in failures


def _run_embed(tmp_path: Path, sim: Any, fmt: str, jobs: int, capsys: Any) -> tuple[Path, str]:
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": f"a signed owl {i}",
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
    capsys.readouterr()
    args = [
        "run",
        str(path),
        "--run-dir",
        str(run),
        *sim_flags(sim),
        "--yes",
        "--metadata",
        "embed",
    ]
    assert main(args) == 0
    out = capsys.readouterr()
    return run, out.out + out.err


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_a_signed_image_from_the_provider_keeps_a_valid_manifest_under_embed(
    fmt, make_sim, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fixture, mime = SIGNED[fmt]
    sent = fixture.read_bytes()
    run, output = _run_embed(tmp_path, make_sim(image_file=str(fixture)), fmt, 2, capsys)
    rows = [r for r in log_table(run).to_pylist() if r["status"] == "ok"]
    saved = [run / p for r in rows for p in r["image_paths"]]
    assert len(rows) == 2 and len(saved) == 2
    for image in saved:
        assert image.read_bytes() == sent  # not a byte added: the manifest's hash still holds
        meta = json.loads(sidecar_path(image).read_text())
        assert meta["job_id"] in image.name and meta["prompt"].startswith("a signed owl")
        assert KEY not in sidecar_path(image).read_text()
    assert "2 carry a C2PA manifest" in output and "0 images embedded" in output
    assert _validation(saved[0].read_bytes(), mime) == _validation(sent, mime)
    assert _validation(sent, mime)[0] == "Valid"


def test_the_simulator_names_a_missing_image_file(tmp_path):
    from batchgen.sim.config import SimConfig, SimConfigError

    missing = tmp_path / "provider.png"
    with pytest.raises(SimConfigError, match=r"image_file=.*provider\.png.*no such file"):
        SimConfig(image_file=str(missing))
