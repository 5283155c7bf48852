"""`batchgen gen "PROMPT"`: one image through the same machinery as a run (real HTTP against
the simulator): saved in a run directory `report` reads, copied with -o, refused ones exit 1,
an existing run directory is refused before anything is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from tests.runhelpers import cli_env, run_cli, sim_flags


def test_gen_saves_one_image_in_a_run_directory(tmp_path: Path, make_sim: Any) -> None:
    sim = make_sim()
    run_dir, copy = tmp_path / "gen", tmp_path / "out" / "fox.png"
    done = run_cli(
        ["gen", "a red fox in snow", "--run-dir", str(run_dir), "-o", str(copy), *sim_flags(sim)],
        env=cli_env(),
    )
    assert done.code == 0, done.output
    saved = sorted((run_dir / "images").glob("gen_*"))
    assert len(saved) == 1 and f"saved: {saved[0]}" in done.output
    assert copy.read_bytes() == saved[0].read_bytes()
    with Image.open(copy) as im:
        im.verify()
    assert (run_dir / "run.json").is_file()
    report = run_cli(["report", str(run_dir), "--format", "json"], env=cli_env())
    assert report.code == 0 and '"jobs_succeeded": 1' in report.output
    again = run_cli(["gen", "another", "--run-dir", str(run_dir), *sim_flags(sim)], env=cli_env())
    assert again.code == 2 and "already holds a run" in again.output


def test_an_output_gen_cannot_write_is_refused_before_anything_is_sent(
    tmp_path: Path, make_sim: Any
) -> None:
    """-o under a file was a traceback after the image was made and paid for."""
    sim = make_sim()
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "fox.png"
    done = run_cli(
        ["gen", "a fox", "--run-dir", str(tmp_path / "g"), "-o", str(target), *sim_flags(sim)],
        env=cli_env(),
    )
    assert done.code == 2 and "Traceback" not in done.output, done.output
    assert done.stderr.startswith(f"batchgen gen: cannot write {target}"), done.stderr
    assert sim.stats.snapshot(timeline=False)["received"] == 0


def test_gen_refused_by_the_provider_exits_1(tmp_path: Path, make_sim: Any) -> None:
    sim = make_sim(faults={"content_policy": 1.0})
    done = run_cli(["gen", "no", "--run-dir", str(tmp_path / "g"), *sim_flags(sim)], env=cli_env())
    assert done.code == 1, done.output
    assert "saved:" not in done.output and "failed for good" in done.output
