"""Edits end to end on the simulator: a folder of photos with one instruction each, input
hashes in the log, resume after a source photo changed, and invalid inputs refused before
anything is sent."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.runhelpers import (
    MODEL_FLAGS,
    cli_env,
    files_holding_secret,
    image_files,
    log_table,
    ok_rows,
    run_cli,
    sim_flags,
)

COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "pink", "cyan", "white", "gray"]


def _photos(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for i, color in enumerate(COLORS):
        path = folder / f"p{i}.{'png' if i % 2 else 'jpg'}"
        Image.new("RGB", (64 + i, 48), color).save(path)
        paths.append(path)
    return paths


def _sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_folder_of_photos_runs_as_edits_and_resume_redoes_the_changed_one(
    tmp_path: Path, sim: Any
) -> None:
    photos = _photos(tmp_path / "photos")
    jobs = tmp_path / "edits.jsonl"
    jobs.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"e{i}",
                    "prompt": f"make photo {i} look like a watercolor",
                    "image": f"photos/{p.name}",
                }
            )
            + "\n"
            for i, p in enumerate(photos)
        )
    )
    run = tmp_path / "run"
    done = run_cli(
        ["run", str(jobs), "--run-dir", str(run), *MODEL_FLAGS, *sim_flags(sim), "--quiet"],
        env=cli_env(),
    )
    assert done.code == 0, done.output
    assert ok_rows(run).num_rows == 10
    rows = [r for r in log_table(run).to_pylist() if r["status"] == "ok"]
    assert len(image_files(run)) == len(rows) == sum(r["image_count"] for r in rows)
    by_id = {r["job_id"]: r for r in rows}
    for i, p in enumerate(photos):
        assert by_id[f"e{i}"]["input_hashes"] == [_sha(p)]
        assert by_id[f"e{i}"]["input_image_tokens"] > 0  # priced from usage, inputs included
        assert by_id[f"e{i}"]["cost_source"] == "usage"
    assert sim.stats["ok"] == 10
    assert files_holding_secret(run) == []

    # edit one source photo: exactly that job runs again, with its new hash
    Image.new("RGB", (70, 40), "black").save(photos[3])
    again = run_cli(["resume", str(run), *sim_flags(sim), "--quiet"], env=cli_env())
    assert again.code == 0, again.output
    assert "input images changed: 1 job run again" in again.output
    second = [r for r in log_table(run).to_pylist() if r["session"] == 2]
    assert [r["job_id"] for r in second] == ["e3"]
    assert second[0]["status"] == "ok" and second[0]["input_hashes"] == [_sha(photos[3])]
    assert sim.stats["ok"] == 11
    # the new answer does not overwrite the image the first one paid for: 11 answers, 11
    # files, each logged once (the report counts what is on disk)
    assert second[0]["image_paths"] == ["images/e3~s2_0.png"]
    logged = [
        p for r in log_table(run).to_pylist() if r["status"] == "ok" for p in r["image_paths"]
    ]
    assert len(logged) == len(set(logged)) == 11 and image_files(run) == set(logged)
    # exported jobs keep finding their photos from anywhere
    out = tmp_path / "elsewhere" / "ok.jsonl"
    out.parent.mkdir()
    assert run_cli(["jobs", str(run), "--status", "ok", "-o", str(out)], env=cli_env()).code == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(j["image"]) for j in exported] == [p.resolve() for p in photos]
    # and nothing more to do afterwards
    third = run_cli(["resume", str(run), *sim_flags(sim), "--quiet"], env=cli_env())
    assert third.code == 0 and "nothing to resume" in third.output


def _mask(path: Path, size: tuple[int, int], fmt: str = "PNG") -> str:
    Image.new("RGBA" if fmt == "PNG" else "RGB", size).save(path, format=fmt)
    return path.name


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("missing", 'image "nope.png" does not exist'),
        ("gif", 'image "pic.gif" is a GIF: edits take PNG, WebP or JPEG'),
        ("mask-size", 'mask "mask.png" is 32x32 but the first image "a.png" is 64x64'),
        ("mask-jpeg", 'mask "mask.jpg" is a JPEG: a mask must be a PNG'),
        ("dall-e-3", "dall-e-3 does not take edits"),
        ("too-many", "17 input images; gpt-image-1 takes at most 16"),
    ],
)
def test_invalid_inputs_are_file_line_errors_and_nothing_is_sent(
    tmp_path: Path, sim: Any, case: str, expect: str
) -> None:
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "pic.gif")
    good = {"id": "ok1", "prompt": "fine", "image": "a.png"}
    bad: dict[str, Any] = {"id": "bad", "prompt": "edit it", "image": "a.png"}
    if case == "missing":
        bad["image"] = "nope.png"
    elif case == "gif":
        bad["image"] = "pic.gif"
    elif case == "mask-size":
        bad["mask"] = _mask(tmp_path / "mask.png", (32, 32))
    elif case == "mask-jpeg":
        bad["mask"] = _mask(tmp_path / "mask.jpg", (64, 64), "JPEG")
    elif case == "dall-e-3":
        bad["model"] = "dall-e-3"
        bad["size"] = "1024x1024"
        bad["quality"] = "standard"
    else:
        bad.pop("image")
        bad["images"] = ["a.png"] * 17
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    for command in (
        ["plan", str(jobs), *MODEL_FLAGS],
        ["run", str(jobs), "--run-dir", str(tmp_path / "run"), *MODEL_FLAGS, *sim_flags(sim)],
    ):
        done = run_cli(command, env=cli_env())
        assert done.code == 2, done.output
        assert f"{jobs}:2: " in done.output and expect in done.output, done.output
    assert sim.stats["received"] == 0
    assert not (tmp_path / "run").exists()


def test_a_url_input_goes_as_the_json_form(tmp_path: Path, sim: Any) -> None:
    from batchgen.jobs.inputs import input_image_tokens

    Image.new("RGB", (64, 200), "red").save(tmp_path / "a.png")
    jobs = tmp_path / "jobs.jsonl"
    job = {
        "id": "mix",
        "prompt": "combine them",
        "input_fidelity": "low",
        "images": ["a.png", "https://example.com/b.png", "file-abc123"],
    }
    jobs.write_text(json.dumps(job) + "\n")
    run = tmp_path / "run"
    done = run_cli(
        ["run", str(jobs), "--run-dir", str(run), *MODEL_FLAGS, *sim_flags(sim), "--quiet"],
        env=cli_env(),
    )
    assert done.code == 0, done.output
    (row,) = [r for r in log_table(run).to_pylist() if r["status"] == "ok"]
    assert row["input_hashes"] == [
        _sha(tmp_path / "a.png"),
        "url:https://example.com/b.png",
        "file_id:file-abc123",
    ]
    # the simulator read the data URL (64x200: 4 tiles) and counted the remote ones as
    # 1024x1024 (1 tile each)
    assert input_image_tokens(64, 200) != input_image_tokens(1024, 1024)
    assert row["input_image_tokens"] == input_image_tokens(64, 200) + 2 * input_image_tokens(
        1024, 1024
    )


def test_edits_are_refused_via_batch_before_anything_is_sent(tmp_path: Path, sim: Any) -> None:
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"id": "e", "prompt": "recolour", "image": "a.png"}) + "\n")
    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(tmp_path / "run"),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--via",
            "batch",
        ],
        env=cli_env(),
    )
    assert done.code == 2 and "edits (jobs with image/images/mask) go through the live API" in (
        done.output
    )
    assert sim.stats["received"] == 0 and not (tmp_path / "run").exists()
