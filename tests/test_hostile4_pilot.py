"""Hostile round 4: `batchgen pilot` given values a careless user types. `--target 0` and
`--confidence 0` are outside what the pilot takes ((0, 1] and [0.5, 1)): they must be refused
before anything is sent, not silently read as the defaults (0.9, 0.8) while the pilot spends.
`--bar 0` is a bar (every image passes): the judge's threshold must be it, not the default 7.
Real HTTP against the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.quality.store import load_scorer, read_scores
from tests.runhelpers import cli_env, run_cli, sim_flags, write_jsonl_jobs

COMMON = ["--model", "gpt-image-1-mini", "--size", "1024x1024", "--yes", "--quiet"]


def _jobs(path: Path, n: int = 3) -> Path:
    return write_jsonl_jobs(path, ({"id": f"s{i}", "prompt": f"a mug {i}"} for i in range(n)))


@pytest.mark.parametrize(("flag", "value"), [("--target", "0"), ("--confidence", "0")])
def test_a_zero_target_or_confidence_is_refused_before_sending(
    tmp_path: Path, sim, flag: str, value: str
) -> None:
    args = ["pilot", str(_jobs(tmp_path / "jobs.jsonl")), "--run-dir", str(tmp_path / "p")]
    args += ["--try", "quality=low", "--judge", "gpt-4o-mini", flag, value]
    done = run_cli([*args, *sim_flags(sim), *COMMON], env=cli_env())
    assert done.code == 2, done.output
    assert flag in done.output
    assert sim.stats.received == 0


def test_bar_zero_is_the_judges_threshold_too(tmp_path: Path, sim) -> None:
    run_dir = tmp_path / "p"
    args = ["pilot", str(_jobs(tmp_path / "jobs.jsonl")), "--run-dir", str(run_dir)]
    args += ["--try", "quality=low", "--judge", "gpt-4o-mini", "--bar", "0"]
    done = run_cli([*args, *sim_flags(sim), *COMMON], env=cli_env())
    assert done.code == 0, done.output
    saved = load_scorer(run_dir) or {}
    assert saved.get("threshold") == 0.0, saved
    scores = read_scores(run_dir).to_pylist()
    assert scores and all(r["status"] == "ok" for r in scores)


def test_settings_that_all_fail_are_said_as_such(tmp_path: Path, sim) -> None:
    """Every sampled request refused under every setting: the verdict said "no setting was
    tried; a larger --sample narrows the intervals" — wrong on both counts."""
    rows = ({"id": f"s{i}", "prompt": f"a mug {i} [sim:content_policy]"} for i in range(3))
    jobs = write_jsonl_jobs(tmp_path / "jobs.jsonl", rows)
    run_dir = tmp_path / "p"
    args = ["pilot", str(jobs), "--run-dir", str(run_dir), "--try", "quality=low,medium"]
    args += ["--judge", "gpt-4o-mini"]
    done = run_cli([*args, *sim_flags(sim), *COMMON], env=cli_env())
    assert done.code == 0, done.output
    text = " ".join(done.output.split())
    assert "no setting was tried" not in text and "larger --sample" not in text
    assert "no image came back under any setting" in text
    assert f"batchgen report {run_dir}" in text
    assert sim.stats.received == 6  # both settings were tried on the 3 jobs
