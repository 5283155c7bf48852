"""Hostile round 4: `--reuse` and `batchgen library` with a library whose files changed under
it, and run directories whose images are symlinks out of the tree. The library stores a
run's images as hard links (same file system), so an image edited in place in the run (an
editor, `exiftool -overwrite_original_in_place`, `mogrify`) is edited in the library too;
a reuse must hand out only the bytes the model answered (their sha256 is the file's name),
and `library add` must not store a file from outside the run. Real runs on the simulator."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow.compute as pc
import pytest

from batchgen.library.index import Library
from tests.runhelpers import cli_env, log_table, run_cli, sim_flags, write_jsonl_jobs

JOBS = 4
RUN = ["--model", "gpt-image-1-mini", "--size", "1024x1024", "--quality", "low"]
RUN += ["--yes", "--quiet", "--no-image-checks"]


def _jobs(path: Path) -> Path:
    rows = ({"id": f"r{i:02d}", "prompt": f"a teapot, view {i}"} for i in range(JOBS))
    return write_jsonl_jobs(path, rows)


def _run(jobs: Path, run_dir: Path, sim, *extra: str):  # type: ignore[no-untyped-def]
    args = ["run", str(jobs), "--run-dir", str(run_dir), *sim_flags(sim), *RUN, *extra]
    done = run_cli(args, env=cli_env())
    assert done.code == 0, done.output
    return done


def test_an_image_edited_in_place_after_it_was_stored_is_not_reused(tmp_path: Path, sim) -> None:
    lib, jobs = tmp_path / "lib", _jobs(tmp_path / "jobs.jsonl")
    first = tmp_path / "first"
    _run(jobs, first, sim, "--reuse", str(lib))
    assert sim.stats.received == JOBS
    original = (first / "images" / "r00_0.png").read_bytes()
    # the library stores each picture once (by sha256): every job the model gave these very
    # bytes shares r00's stored file
    sharing = sorted(
        f"r{i:02d}"
        for i in range(JOBS)
        if (first / "images" / f"r{i:02d}_0.png").read_bytes() == original
    )
    # edited in place: the same inode, so the library's hard link sees the new bytes too
    with (first / "images" / "r00_0.png").open("r+b") as fh:
        fh.seek(len(original) - 8)
        fh.write(b"EDITED!!")
    second = tmp_path / "second"
    _run(jobs, second, sim, "--reuse", str(lib))
    log = log_table(second)
    sent = log.filter(pc.not_equal(log["cost_source"], "reused"))["job_id"].to_pylist()
    assert sorted(sent) == sharing  # their stored bytes are not the answer any more: asked
    assert sim.stats.received == JOBS + len(sharing)
    for r in log.to_pylist():
        assert b"EDITED!!" not in (second / r["image_paths"][0]).read_bytes()
    # the run added the fresh answers: the library holds the right bytes again
    third = tmp_path / "third"
    _run(jobs, third, sim, "--reuse", str(lib))
    assert sim.stats.received == JOBS + len(sharing)  # nothing sent: all reused
    stored = Library(lib).lookup(log.to_pylist()[0]["fingerprint"])
    assert stored is not None
    assert hashlib.sha256(stored.images[0].read_bytes()).hexdigest() == stored.images[0].stem


@pytest.mark.parametrize("absolute", [True, False])
def test_library_add_refuses_images_that_are_symlinks_out_of_the_run(
    tmp_path: Path, sim, absolute: bool
) -> None:
    secret = tmp_path / "home" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY----- not an image")
    jobs, first = _jobs(tmp_path / "jobs.jsonl"), tmp_path / "first"
    _run(jobs, first, sim)
    # a run directory from somewhere else, one image a symlink pointing out of it
    image = first / "images" / "r01_0.png"
    image.unlink()
    os.symlink(secret if absolute else os.path.relpath(secret, image.parent), image)
    lib = tmp_path / "lib"
    done = run_cli(["library", "add", str(first), "--library", str(lib)], env=cli_env())
    assert done.code == 0, done.output
    stored = [p.read_bytes() for p in (lib / "files").glob("*/*")]
    others = {p.read_bytes() for p in (first / "images").glob("*.png") if not p.is_symlink()}
    assert sorted(stored) == sorted(others)  # the run's own images, once each
    assert all(b"PRIVATE KEY" not in data for data in stored)
    # a run reusing that run directory directly (as --from-pilot does) sends r01 instead
    second = tmp_path / "second"
    from batchgen.config import RunConfig
    from batchgen.session.start import start_run

    flags = {
        "base_url": sim.base_url,
        "model": "gpt-image-1-mini",
        "size": "1024x1024",
        "quality": "low",
        "yes": True,
        "quiet": True,
        "image_checks": False,
        "reuse": {"sources": [{"kind": "run", "path": str(first)}]},
    }
    os.environ.setdefault("OPENAI_API_KEY", "sk-test-SECRET123456")
    outcome = start_run(str(jobs), RunConfig.build(flags), run_dir=second, handle_signals=False)
    assert outcome.exit_code == 0
    log = log_table(second)
    sent = log.filter(pc.not_equal(log["cost_source"], "reused"))["job_id"].to_pylist()
    assert sent == ["r01"]
    for p in (second / "images").iterdir():
        assert b"PRIVATE KEY" not in p.read_bytes()
        assert not p.is_symlink()
