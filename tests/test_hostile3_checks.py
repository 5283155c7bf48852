"""Round three: a run directory whose images/ holds what is not an image file — a FIFO under a
logged image's name, a symlink to /dev/zero (a run dir shared on a network drive, or tampered
with). The image checks opened it and read: ``batchgen report`` blocked forever on the FIFO,
and would have read /dev/zero until memory ran out. Now each is an "undecodable" finding that
says what it is, and the report is made.

The HTML report's contact sheet (batchgen/reports/thumbs.py) read each image with
Path.read_bytes and blocked the same way; it reads through the same guard now."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.runhelpers import cli_env, run_cli, sim_flags, write_text_jobs

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs"),
]


@pytest.mark.parametrize("fmt", ["json", "text", "md", "html"])
def test_a_fifo_or_a_device_in_images_is_a_finding_not_a_hang(
    make_sim: Any, tmp_path: Path, fmt: str
) -> None:
    sim = make_sim()
    jobs = write_text_jobs(tmp_path / "jobs.txt", ["a red fox", "a blue fox", "a grey fox"])
    run_dir = tmp_path / "run"
    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            "--model",
            "gpt-image-1",
            "--quiet",
            *sim_flags(sim),
        ],
        env=cli_env(),
    )
    assert done.code == 0, done.output
    fifo, device, _ = sorted((run_dir / "images").glob("*.png"))
    fifo.unlink()
    os.mkfifo(fifo)
    device.unlink()
    device.symlink_to("/dev/zero")
    out = tmp_path / f"report.{fmt}"
    report = run_cli(
        ["report", str(run_dir), "--format", fmt, "-o", str(out)], env=cli_env(), timeout=60
    )
    assert report.code == 0 and "Traceback" not in report.output, report.output
    if fmt == "json":
        checks = json.loads(out.read_text())["image_checks"]
        assert checks["counts"]["undecodable"] == 2, checks["counts"]
        details = [f["detail"] for f in checks["findings"]]
        assert sum("not a regular file" in d for d in details) == 2, details
