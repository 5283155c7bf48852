"""Hostile round 4: --metadata embed with prompts XML cannot hold as they are (control
characters: a prompt may carry ESC, NUL, form feed — the job file allows them), and with
image files that are cut short. Real runs on the simulator; the XMP read back by Pillow and
parsed by the standard library's XML parser, as any XMP reader does."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from batchgen.cli.main import main
from batchgen.metadata import apply, sidecar_path
from tests.runhelpers import sim_flags

KEY = "sk-meta4-0123456789"
PROMPTS = ["an owl \x1b[31m in red", "nul \x00 here", "form\x0cfeed & <tags>", "plain owl"]
DC = "{http://purl.org/dc/elements/1.1/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"


def _run(tmp_path: Path, sim, fmt: str, *extra: str) -> Path:
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"j{i}",
                    "prompt": p,
                    "model": "gpt-image-1",
                    "quality": "low",
                    "output_format": fmt,
                }
            )
            + "\n"
            for i, p in enumerate(PROMPTS)
        ),
        encoding="utf-8",
    )
    run = tmp_path / "run"
    args = ["run", str(path), "--run-dir", str(run), *sim_flags(sim), "--yes", "--quiet", *extra]
    assert main(args) == 0
    return run


def _xmp_description(xmp: bytes) -> str:
    """The dc:description an XMP reader gets (ParseError: the packet is not XML)."""
    start, end = xmp.index(b"<x:xmpmeta"), xmp.index(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")
    root = ET.fromstring(xmp[start:end])
    li = root.find(f".//{DC}description/{RDF}Alt/{RDF}li")
    assert li is not None
    return li.text or ""


def test_jpeg_xmp_with_control_characters_in_the_prompt_is_well_formed(
    make_sim, tmp_path, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    run = _run(tmp_path, make_sim(), "jpeg", "--metadata", "embed")
    for i, prompt in enumerate(PROMPTS):
        image = run / "images" / f"j{i}_0.jpg"
        assert not sidecar_path(image).exists()
        with Image.open(image) as im:
            xmp = im.info["xmp"]
            im.load()
        described = _xmp_description(xmp)
        # the text is the prompt, its control characters written as visible escapes
        assert (
            described.replace("\\u001b", "\x1b")
            .replace("\\u0000", "\x00")
            .replace("\\u000c", "\x0c")
            == prompt
        )
        # the exact prompt stays in the JSON record beside it
        start = xmp.index(b"<batchgen:metadata>") + len(b"<batchgen:metadata>")
        record = ET.fromstring(b"<m>" + xmp[start : xmp.index(b"</batchgen:metadata>")] + b"</m>")
        assert json.loads(record.text or "")["prompt"] == prompt


@pytest.mark.parametrize("cut", ["half", "no_iend", "not_an_image"])
def test_embed_into_a_damaged_image_keeps_its_bytes_and_says_so(
    make_sim, tmp_path, monkeypatch, cut
):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    run = _run(tmp_path, make_sim(), "png")  # --metadata none: embedded below
    image = run / "images" / "j3_0.png"
    data = image.read_bytes()
    damaged = {
        "half": data[: len(data) // 2],
        "no_iend": data[: data.rindex(b"IEND") - 4],
        "not_an_image": b"<html>502 Bad Gateway</html>",
    }[cut]
    image.write_bytes(damaged)
    tally = apply(run, "embed")
    assert image.read_bytes() == damaged  # left exactly as it was
    record = json.loads(sidecar_path(image).read_text())
    assert record["prompt"] == "plain owl" and record["job_id"] == "j3"
    assert tally.embedded == len(PROMPTS) - 1
    text = tally.describe("embed")
    # said as what it is, not as a signed file (it carries no C2PA manifest)
    assert tally.c2pa_sidecars == 0 and "C2PA" not in text
    assert "1 in a format it cannot embed into" in text or "1 damaged" in text


@pytest.mark.parametrize("mode", ["sidecar", "embed"])
def test_images_at_images_to_get_a_sidecar_object_and_it_is_said(
    make_sim, tmp_path, monkeypatch, capsys, mode
):
    """--metadata with --images-to wrote nothing for the objects, and said nothing."""
    pytest.importorskip("fsspec")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    bucket = tmp_path / "bucket" / "shots"
    sim = make_sim()
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"o{i}", "prompt": f"an owl {i}", "model": "gpt-image-1"}) + "\n"
            for i in range(3)
        )
    )
    args = ["run", str(path), "--run-dir", str(tmp_path / "run"), *sim_flags(sim), "--yes"]
    args += ["--images-to", bucket.as_uri() + "/", "--metadata", mode]
    assert main(args) == 0
    said = " ".join(capsys.readouterr().out.split())
    for i in range(3):
        image = bucket / f"o{i}_0.png"
        record = json.loads((bucket / f"o{i}_0.png.json").read_text())
        assert record["prompt"] == f"an owl {i}" and record["job_id"] == f"o{i}"
        assert b"iTXt" not in image.read_bytes()  # the uploaded object is as sent
        assert KEY not in (bucket / f"o{i}_0.png.json").read_text()
    assert "3 sidecars" in said if mode == "sidecar" else "3 stored at --images-to" in said
