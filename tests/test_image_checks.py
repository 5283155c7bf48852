"""Image checks on real simulator renders (fetched over HTTP on 127.0.0.1) with planted
defects: each defect is flagged, and nothing is flagged on the clean renders."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import openai
import pytest
from PIL import Image, ImageFilter

from batchgen.analyze import CheckConfig, check_images
from batchgen.analyze.images import _gray_thumb, dhash, laplacian_var
from batchgen.sim.render import variant_of
from batchgen.testing.synthetic import table_from_rows, write_run

VARIANTS = 64


def distinct_prompts(count: int) -> list[str]:
    """Prompts the simulator renders as different pictures (it picks a picture by hash)."""
    out, seen, i = [], set(), 0
    while len(out) < count:
        p = f"a lighthouse at dusk, study {i}"
        v = variant_of(p, 0, VARIANTS)
        if v not in seen:
            seen.add(v)
            out.append(p)
        i += 1
    return out


def fetch(sim, prompt: str, size: str = "1024x1024", fmt: str = "png") -> bytes:
    client = openai.OpenAI(base_url=sim.base_url, api_key="sk-test-not-a-key", max_retries=0)
    answer = client.images.generate(
        model="gpt-image-1", prompt=prompt, size=size, output_format=fmt
    )
    return base64.b64decode(answer.data[0].b64_json)


def ok_row(job_id: str, prompt: str, size: str, paths: list[str]) -> dict:
    return {
        "run_id": "t",
        "session": 1,
        "job_id": job_id,
        "attempt": 1,
        "status": "ok",
        "final": True,
        "prompt": prompt,
        "size": size,
        "model": "gpt-image-1",
        "quality": "medium",
        "image_paths": paths,
        "image_count": len(paths),
        "latency_s": 1.0,
        "finished_at": 1_800_000_000.0,
        "cost_usd": 0.04,
        "cost_source": "usage",
    }


def make_run(
    tmp_path: Path, images: list[tuple[str, str, str, list[tuple[str, bytes | None]]]]
) -> Path:
    """images: (job_id, prompt, size, [(file name, bytes or None = not written)])."""
    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    rows = []
    for job_id, prompt, size, files in images:
        for name, data in files:
            if data is not None:
                (run / "images" / name).write_bytes(data)
        rows.append(ok_row(job_id, prompt, size, [f"images/{n}" for n, _ in files]))
    write_run(run, table_from_rows(rows), jobs=len(rows))
    return run


def png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def renders(make_sim):
    sim = make_sim(tiny=False, variants=VARIANTS)
    prompts = distinct_prompts(8)
    return prompts, [fetch(sim, p) for p in prompts], sim


def test_clean_simulator_renders_are_not_flagged(tmp_path, renders):
    prompts, data, sim = renders
    jpeg = fetch(sim, prompts[0] + " in jpeg", size="1536x1024", fmt="jpeg")
    entries = [
        (f"job-{i}", p, "1024x1024", [(f"job-{i}_0.png", d)])
        for i, (p, d) in enumerate(zip(prompts, data, strict=False))
    ]
    entries.append(("job-jpeg", prompts[0] + " in jpeg", "1536x1024", [("job-jpeg_0.jpeg", jpeg)]))
    # n=2 of one prompt may come back alike: not a duplicate across prompts
    entries.append(
        ("job-n2", prompts[1], "1024x1024", [("job-n2_0.png", data[1]), ("job-n2_1.png", data[1])])
    )
    result = check_images(make_run(tmp_path, entries))
    assert result.checked == len(prompts) + 1 + 2
    assert result.flagged == 0, result.findings


def test_planted_defects_are_each_flagged(tmp_path, renders):
    prompts, data, _ = renders
    sharp = Image.open(io.BytesIO(data[0]))
    entries = [
        ("clean-1", prompts[1], "1024x1024", [("clean-1_0.png", data[1])]),
        (
            "blank",
            "an empty room",
            "1024x1024",
            [("blank_0.png", png(Image.new("RGB", (1024, 1024), (200, 200, 205))))],
        ),
        ("wrong-size", prompts[2], "1536x1024", [("wrong-size_0.png", data[2])]),
        (
            "blurred",
            prompts[3],
            "1024x1024",
            [("blurred_0.png", png(sharp.filter(ImageFilter.GaussianBlur(8))))],
        ),
        # the same picture as clean-1, delivered for another prompt
        ("dup", prompts[4] + " but different", "1024x1024", [("dup_0.png", data[1])]),
        ("broken", prompts[5], "1024x1024", [("broken_0.png", b"\x89PNG\r\n\x1a\n not really")]),
        ("gone", prompts[6], "1024x1024", [("gone_0.png", None)]),
        ("auto", prompts[7], "auto", [("auto_0.png", data[7])]),
    ]
    result = check_images(make_run(tmp_path, entries))
    counts = result.counts
    assert counts == {
        "missing": 1,
        "undecodable": 1,
        "wrong_size": 1,
        "blank": 1,
        "blurred": 1,
        "duplicate": 2,
    }
    by_problem = {(f.problem, f.job_id) for f in result.findings or ()}
    assert by_problem == {
        ("missing", "gone"),
        ("undecodable", "broken"),
        ("wrong_size", "wrong-size"),
        ("blank", "blank"),
        ("blurred", "blurred"),
        ("duplicate", "clean-1"),
        ("duplicate", "dup"),
    }
    assert result.duplicate_groups == [["images/clean-1_0.png", "images/dup_0.png"]]
    wrong = next(f for f in result.findings or () if f.problem == "wrong_size")
    assert "1024x1024, requested 1536x1024" in wrong.detail


def test_near_duplicate_after_recompression_is_caught(tmp_path, renders):
    prompts, data, _ = renders
    recompressed = png(Image.open(io.BytesIO(data[0])).convert("RGB"), "JPEG")
    entries = [
        ("a", prompts[0], "1024x1024", [("a_0.png", data[0])]),
        ("b", "another prompt", "1024x1024", [("b_0.jpeg", recompressed)]),
    ]
    assert check_images(make_run(tmp_path, entries)).counts["duplicate"] == 2
    strict = CheckConfig(dup_max_bits=0, hash_size=16)
    h1 = dhash(_gray_thumb(tmp_path / "run/images/a_0.png", 256)[1], 16)
    h2 = dhash(_gray_thumb(tmp_path / "run/images/b_0.jpeg", 256)[1], 16)
    if h1 != h2:  # JPEG moved a few bits: only the near-same search finds it
        assert check_images(tmp_path / "run", strict).counts["duplicate"] == 0


def test_thresholds_separate_sharp_from_blurred(renders):
    _, data, _ = renders
    config = CheckConfig()
    for d in data:
        sharp = Image.open(io.BytesIO(d)).convert("L")
        sharp.thumbnail((config.thumb_px, config.thumb_px))
        blurred = Image.open(io.BytesIO(d)).filter(ImageFilter.GaussianBlur(8)).convert("L")
        blurred.thumbnail((config.thumb_px, config.thumb_px))
        assert laplacian_var(np.asarray(sharp, np.float32)) > 5 * config.blur_laplacian_var
        assert laplacian_var(np.asarray(blurred, np.float32)) < config.blur_laplacian_var
