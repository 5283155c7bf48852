"""Temp files are created exclusively: a symlink planted at a temp name (an image's, a log
part's, the in-flight file's, run.json's, the job index's) is never followed out of the run
directory; the run replaces the link with its own file and the target is untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.images import save_images
from batchgen.provider.base import ImageData
from batchgen.runlog import files
from batchgen.runlog.fsio import atomic_write_bytes
from tests.runhelpers import (
    MODEL_FLAGS,
    cli_env,
    image_files,
    logged_images,
    ok_counts,
    run_cli,
    sim_flags,
    write_jsonl_jobs,
)

pytestmark = pytest.mark.timeout(60)

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
OUTSIDE = b"precious: must never be overwritten by batchgen\n"


def _target(tmp_path: Path, name: str) -> Path:
    target = tmp_path / "outside" / name
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(OUTSIDE)
    return target


def test_save_images_does_not_write_through_a_link_planted_at_the_temp_name(
    tmp_path: Path,
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    target = _target(tmp_path, "victim.png")
    (images / ".a1_0.png.tmp").symlink_to(target)
    paths, _ = save_images(images, "a1", [ImageData(PNG, "png")])
    assert paths == ["images/a1_0.png"]
    assert target.read_bytes() == OUTSIDE
    final = images / "a1_0.png"
    assert not final.is_symlink() and final.read_bytes() == PNG
    assert not (images / ".a1_0.png.tmp").exists()


def test_atomic_write_does_not_follow_a_planted_link(tmp_path: Path) -> None:
    target = _target(tmp_path, "victim.json")
    (tmp_path / ".run.json.tmp").symlink_to(target)
    atomic_write_bytes(tmp_path / "run.json", b"{}")
    assert target.read_bytes() == OUTSIDE
    assert not (tmp_path / "run.json").is_symlink()
    assert (tmp_path / "run.json").read_bytes() == b"{}"


def test_a_run_with_links_planted_at_every_temp_name_writes_only_inside_its_directory(
    tmp_path: Path, make_sim
) -> None:
    sim = make_sim(latency_mean=0.0, seed=3)
    jobs = write_jsonl_jobs(
        tmp_path / "jobs.jsonl", ({"id": f"a{i}", "prompt": f"planted {i}"} for i in range(4))
    )
    run_dir = tmp_path / "run"
    planted: list[tuple[Path, Path]] = []
    for sub, names in {
        "images": [f".a{i}_0.{ext}.tmp" for i in range(4) for ext in ("png", "jpg", "webp")],
        "log": [f".{files.part_name(1, s)}.tmp" for s in range(3)]
        + [f".{files.compact_name(1, s)}.tmp" for s in range(3)],
        "state": [".inflight-00001.json.tmp", ".job-index.parquet.tmp"],
        ".": [".run.json.tmp"],
    }.items():
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            target = _target(tmp_path, f"{sub.strip('.')}-{name}")
            (run_dir / sub / name).symlink_to(target)
            planted.append((run_dir / sub / name, target))

    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--yes",
            "--quiet",
        ],
        env=cli_env(),
    )
    assert done.code == 0, done.output
    assert "Traceback" not in done.output
    for _, target in planted:
        assert target.read_bytes() == OUTSIDE, f"{target} was written through a planted link"
    links = [str(p) for p in run_dir.rglob("*") if p.is_symlink() and not p.name.endswith(".tmp")]
    assert not links, links
    assert set(ok_counts(run_dir).values()) == {1} and len(ok_counts(run_dir)) == 4
    assert image_files(run_dir) == set(logged_images(run_dir))
