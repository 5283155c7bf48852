"""Round three, ``--via batch``: an output line holding more images than the job's ``n`` and
one holding a decompression bomb. The live path keeps the first ``n`` images (with a note) and
refuses a bomb as invalid_response (tests/test_hostile_answers.py); the batch path must do the
same, not save (and price) thousands of files or a picture no reader can open.

The real CLI over HTTP against the simulator's Batch API (``[batch:MODE]`` markers:
batchgen/sim/batchhostile.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.runhelpers import (
    check_log_readable,
    cli_env,
    image_files,
    job_ids_by_prompt,
    log_table,
    logged_images,
    run_cli,
    write_text_jobs,
)
from tests.test_batch import _run

pytestmark = pytest.mark.timeout(120)


def test_more_images_than_n_and_a_bomb_in_batch_output(tmp_path: Path, make_sim: Any) -> None:
    sim = make_sim(batch_seconds=0.2)
    prompts = ["[batch:images=40] a many-image fjord", "[batch:bomb] a bomb fjord", "plain fjord"]
    jobs = write_text_jobs(tmp_path / "jobs.txt", prompts)
    run_dir = tmp_path / "run"
    done = run_cli(_run(jobs, run_dir, sim, "--quiet"), env=cli_env())
    assert "Traceback" not in done.output, done.output
    check_log_readable(run_dir)
    ids = job_ids_by_prompt(run_dir)
    columns = ["job_id", "status", "error_class", "error_message", "image_count", "cost_usd"]
    rows = {r["job_id"]: r for r in log_table(run_dir, columns).to_pylist()}
    many, bomb, plain = (rows[ids[p]] for p in prompts)
    # n=1 (the default): one image kept and priced, the rest named in the row
    assert many["status"] == "ok" and many["image_count"] == 1, many
    assert "40 images for n=1" in many["error_message"], many
    # priced as one image (its usage's prompt tokens differ a little from the plain job's)
    assert many["cost_usd"] == pytest.approx(plain["cost_usd"], rel=0.05), (many, plain)
    # the bomb: refused as the live path refuses it, nothing of it on disk
    assert bomb["status"] == "error" and bomb["error_class"] == "invalid_response", bomb
    assert "decompression bomb" in bomb["error_message"], bomb
    assert not [p for p in image_files(run_dir) if p.startswith(f"images/{ids[prompts[1]]}_")]
    assert image_files(run_dir) == set(logged_images(run_dir))
    assert len(image_files(run_dir)) == 2


def test_output_lines_naming_unknown_custom_ids_are_said_not_silently_dropped(
    tmp_path: Path, make_sim: Any
) -> None:
    """A provider (or a proxy) that hands back custom_ids changed — here upper-cased: the
    lines were run and billed, but name no job. Their jobs stay pending (nothing to save), and
    the run says so, with an example id, instead of logging them "not run" and letting resume
    pay for them again without a word."""
    sim = make_sim(batch_seconds=0.2)
    prompts = ["[batch:upper_id] a renamed fjord", "a plain fjord"]
    jobs = write_text_jobs(tmp_path / "jobs.txt", prompts)
    run_dir = tmp_path / "run"
    done = run_cli(_run(jobs, run_dir, sim), env=cli_env())
    assert "Traceback" not in done.output, done.output
    ids = job_ids_by_prompt(run_dir)
    renamed = ids[prompts[0]]
    assert "1 line(s) of its output name no job of it" in done.output, done.output
    assert repr(renamed.upper()) in done.output, done.output
    rows = {
        r["job_id"]: r
        for r in log_table(run_dir, ["job_id", "status", "error_message"]).to_pylist()
    }
    assert rows[ids[prompts[1]]]["status"] == "ok"
    row = rows[renamed]
    assert row["status"] == "error", row
    assert "no output line names this job" in row["error_message"], row
    assert repr(renamed.upper()) in row["error_message"], row
