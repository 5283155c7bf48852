"""`batchgen export` when the disk says no, and when images are gone. A write that fails
part way (a file-size limit: the disk full at that size, as `ulimit -f` sets it; the errno is
EFBIG, a full disk's ENOSPC takes the same path) is one line naming the file and the cause,
exit 2, and leaves --to as it was (no half-written file under a final name), so the same
command runs again. Images the log names that were deleted are skipped and counted.
Real runs on the simulator, the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batchgen.cli.main import main
from batchgen.export import export_run
from batchgen.export.staging import STAGE
from tests.runhelpers import cli_env, sim_flags

KEY = "sk-exportio-0123456789"
JOBS = 4
FINAL = {
    "jsonl": "manifest.jsonl",
    "parquet": "images.parquet",
    "webdataset": "shard-000000.tar",
    "hf": "data",
}


@pytest.fixture
def run(make_sim, tmp_path, monkeypatch) -> Path:
    sim = make_sim(image_kb=8)  # ~8 KB a picture: 4 of them pass a 4 KB file-size limit
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        "".join(
            json.dumps({"id": f"b{i}", "prompt": f"a paper boat {i}", "quality": "low"}) + "\n"
            for i in range(JOBS)
        )
    )
    out = tmp_path / "run"
    assert main(["run", str(jobs), "--run-dir", str(out), *sim_flags(sim), "--quiet"]) == 0
    return out


def _limited(max_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, resource.RLIM_INFINITY))


def _export_cli(run: Path, out: Path, fmt: str, *, max_bytes: int | None = None):
    env = {**cli_env(), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "batchgen", "export", str(run), "--to", str(out), "--format", fmt],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=None if max_bytes is None else lambda: _limited(max_bytes),
        check=False,
    )


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "webdataset", "hf"])
@pytest.mark.parametrize("existed", [False, True], ids=["new-to", "empty-to"])
def test_a_write_failing_part_way_is_one_line_and_leaves_to_as_it_was(
    run: Path, tmp_path: Path, fmt: str, existed: bool
) -> None:
    out = tmp_path / "out" / fmt
    if existed:
        out.mkdir(parents=True)
    done = _export_cli(run, out, fmt, max_bytes=1024 if fmt == "jsonl" else 4096)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"batchgen export: cannot write {out}"), lines[0]
    assert os.strerror(27) in lines[0], lines[0]  # EFBIG: "File too large"
    if fmt != "hf":  # the file being written, by its final name
        assert f"cannot write {out / FINAL[fmt]}:" in lines[0], lines[0]
    assert "nothing was exported" in lines[0]
    # no half-written file under a final name, nor anything else: --to is as it was
    if existed:
        assert list(out.iterdir()) == []
    else:
        assert not out.exists() and not out.parent.exists()
    # and the same command, with room, exports everything
    again = _export_cli(run, out, fmt)
    assert again.returncode == 0, again.stderr
    assert f"{JOBS} images exported" in again.stderr
    assert not (out / STAGE).exists()
    if fmt == "parquet":
        assert pq.read_table(out / FINAL[fmt]).num_rows == JOBS


def test_images_missing_on_disk_are_skipped_counted_and_named(
    run: Path, tmp_path: Path, capsys
) -> None:
    capsys.readouterr()
    assert main(["export", str(run), "--to", str(tmp_path / "all"), "--format", "jsonl"]) == 0
    err = capsys.readouterr().err
    assert f"{JOBS} images exported" in err and "skipped" not in err, err  # none: nothing said
    gone = sorted((run / "images").glob("*.png"))[:2]
    for p in gone:
        p.unlink()
    assert main(["export", str(run), "--to", str(tmp_path / "m"), "--format", "jsonl"]) == 0
    err = capsys.readouterr().err
    rows = (tmp_path / "m" / "manifest.jsonl").read_text().splitlines()
    assert len(rows) == JOBS - 2
    assert f"{JOBS - 2} images exported" in err, err
    assert "2 images skipped" in err and "not on disk" in err, err
    assert f"images/{gone[0].name}" in err, err
    # the Python API says the same
    done = export_run(run, tmp_path / "p", "parquet")
    assert done.images == JOBS - 2
    assert done.missing == tuple(f"images/{p.name}" for p in gone)
    for p in sorted((run / "images").glob("*.png")):
        p.unlink()
    capsys.readouterr()
    assert main(["export", str(run), "--to", str(tmp_path / "none"), "--format", "jsonl"]) == 2
    err = capsys.readouterr().err
    assert "no image to export" in err and f"{JOBS} images the log names are not on disk" in err
