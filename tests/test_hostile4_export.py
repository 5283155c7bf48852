"""Hostile round 4: `batchgen export` of odd runs — job ids that differ only by '.' and '_'
(both allowed in an id), prompts holding newlines, NUL and other control characters.
Real runs on the simulator, read back by the consumers' own libraries."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batchgen.cli.main import main
from tests.runhelpers import sim_flags

KEY = "sk-export4-0123456789"


def _run(make_sim, tmp_path: Path, monkeypatch, jobs: list[dict[str, object]]) -> Path:
    sim = make_sim(tiny=True)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"model": "gpt-image-1", "quality": "low", **job}) + "\n" for job in jobs
        ),
        encoding="utf-8",
    )
    run = tmp_path / "run"
    assert main(["run", str(path), "--run-dir", str(run), *sim_flags(sim), "--quiet"]) == 0
    return run


def _export(run: Path, out: Path, fmt: str) -> int:
    return main(["export", str(run), "--to", str(out), "--format", fmt])


# ids whose image stems differ only where one has '.' and the other '_': the WebDataset key
# (the stem with '.' replaced, since WebDataset splits a member name at its first '.') was
# the same for both, so a reader merged two images into one sample and dropped the other
IDS = ["cat.v2", "cat_v2", "a.b.c", "a_b.c", "a.b_c"]


def test_ids_differing_by_dot_and_underscore_stay_separate_samples(make_sim, tmp_path, monkeypatch):
    wds = pytest.importorskip("webdataset")
    run = _run(make_sim, tmp_path, monkeypatch, [{"id": i, "prompt": f"p {i}"} for i in IDS])
    out = tmp_path / "wds"
    assert _export(run, out, "webdataset") == 0
    shards = sorted(str(p) for p in out.glob("shard-*.tar"))
    samples = list(wds.WebDataset(shards, shardshuffle=False))
    assert len(samples) == len(IDS)
    by_job = {}
    for s in samples:
        meta = json.loads(s["json"])
        assert meta["key"] == s["__key__"]
        # the image of the sample is the job's own file
        assert s["png"] == (run / meta["file"]).read_bytes()
        by_job[meta["job_id"]] = meta["prompt"]
    assert by_job == {i: f"p {i}" for i in IDS}
    # every format gives each image its own key
    assert _export(run, tmp_path / "pq", "parquet") == 0
    keys = pq.read_table(tmp_path / "pq" / "images.parquet").column("key").to_pylist()
    assert len(set(keys)) == len(IDS)


PROMPTS = [
    "line one\nline two",
    'quote " and comma , and\r\ncrlf',
    "nul \x00 in the middle",
    "tab\tand escape \x1b[31m red",
    "long " + "x" * 31_000,
]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_prompts_with_newlines_and_nul_come_back_as_written(make_sim, tmp_path, monkeypatch, fmt):
    jobs = [{"id": f"j{i}", "prompt": p} for i, p in enumerate(PROMPTS)]
    run = _run(make_sim, tmp_path, monkeypatch, jobs)
    out = tmp_path / fmt
    assert _export(run, out, fmt) == 0
    if fmt == "csv":
        with (out / "manifest.csv").open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    else:
        rows = pq.read_table(out / "images.parquet").to_pylist()
    got = {r["job_id"]: r["prompt"] for r in rows}
    assert got == {f"j{i}": p for i, p in enumerate(PROMPTS)}


def test_to_an_existing_file_is_a_usage_error_not_a_traceback(
    make_sim, tmp_path, monkeypatch, capsys
):
    run = _run(make_sim, tmp_path, monkeypatch, [{"id": "a", "prompt": "a kite"}])
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    assert _export(run, target, "jsonl") == 2
    err = capsys.readouterr().err
    assert f"--to {target}" in err and "not a directory" in err
    assert target.read_text() == "mine\n"  # untouched


@pytest.mark.parametrize("fmt", ["hf", "webdataset", "parquet", "jsonl"])
def test_a_run_without_an_ok_image_exports_nothing_and_says_why(
    make_sim, tmp_path, monkeypatch, capsys, fmt
):
    jobs = [{"id": f"f{i}", "prompt": f"a kite {i} [sim:content_policy]"} for i in range(2)]
    sim = make_sim(tiny=True)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        "".join(json.dumps({"model": "gpt-image-1", "quality": "low", **j}) + "\n" for j in jobs)
    )
    run = tmp_path / "run"
    assert main(["run", str(path), "--run-dir", str(run), *sim_flags(sim), "--quiet"]) == 1
    out = tmp_path / "out"
    capsys.readouterr()
    assert _export(run, out, fmt) == 2
    err = capsys.readouterr().err
    assert "no image to export" in err and str(run) in err
    # no empty dataset left behind (an HF folder without a shard does not load)
    assert not out.exists()
