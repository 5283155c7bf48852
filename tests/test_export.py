"""`batchgen export`: a run's images out as a Hugging Face dataset (read back by `datasets`,
images decoding), WebDataset shards (read back by `webdataset`), one Parquet table with the
bytes, and CSV/JSONL manifests; --best and --min-score from the quality loop's scores; a
1,000-image run exported with memory that does not grow with it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchgen.cli.main import main
from batchgen.quality.store import read_scores
from tests.runhelpers import sim_flags

KEY = "sk-export-0123456789"
PROMPTS = [f"a paper boat {i}" + (" [sim:wrong]" if i % 3 == 0 else "") for i in range(6)]


@pytest.fixture
def scored_run(make_sim, tmp_path, monkeypatch) -> Path:
    """A real run of 6 jobs (2 images each) against the simulator, scored by its judge."""
    sim = make_sim(tiny=True)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        "".join(
            json.dumps({"prompt": p, "model": "gpt-image-1", "quality": "low", "n": 2}) + "\n"
            for p in PROMPTS
        )
    )
    run = tmp_path / "run"
    common = [*sim_flags(sim), "--quiet"]
    assert main(["run", str(jobs), "--run-dir", str(run), *common]) == 0
    assert main(["score", str(run), "--judge", "gpt-4o-mini", *common]) == 0
    return run


def _export(run: Path, out: Path, fmt: str, *extra: str) -> int:
    return main(["export", str(run), "--to", str(out), "--format", fmt, *extra])


def test_hf_export_reads_back_with_datasets_and_images_decode(scored_run, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "hf"
    assert _export(scored_run, out, "hf", "--shard-size", "5") == 0
    shards = sorted((out / "data").glob("train-*.parquet"))
    assert [s.name for s in shards] == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    ds = datasets.load_dataset(
        "parquet", data_dir=str(out / "data"), split="train", cache_dir=str(tmp_path / "c")
    )
    assert ds.num_rows == 12
    assert isinstance(ds.features["image"], datasets.Image)
    first = ds[0]
    assert first["image"].size == (64, 64)  # the simulator's tiny images, decoded by PIL
    assert first["prompt"] in PROMPTS and first["model"] == "gpt-image-1"
    assert first["quality"] == "low" and first["cost_usd"] > 0
    scores = {r["image_path"]: r["score"] for r in read_scores(scored_run).to_pylist()}
    for row in ds.select_columns(["key", "score"]):
        assert row["score"] == scores[f"images/{row['key']}.png"]


def test_webdataset_shards_read_back_with_webdataset(scored_run, tmp_path):
    wds = pytest.importorskip("webdataset")
    out = tmp_path / "wds"
    assert _export(scored_run, out, "webdataset", "--shard-size", "4") == 0
    shards = sorted(str(p) for p in out.glob("shard-*.tar"))
    assert len(shards) == 3
    samples = list(wds.WebDataset(shards, shardshuffle=False).decode("pil"))
    assert len(samples) == 12
    for sample in samples:
        assert sample["png"].size == (64, 64)
        meta = sample["json"]
        assert meta["key"] == sample["__key__"] and meta["prompt"] in PROMPTS


def test_parquet_and_manifests(scored_run, tmp_path):
    assert _export(scored_run, tmp_path / "pq", "parquet") == 0
    table = pq.read_table(tmp_path / "pq" / "images.parquet")
    assert table.num_rows == 12 and table.schema.field("image_bytes").type == pa.binary()
    row = table.slice(0, 1).to_pylist()[0]
    assert row["image_bytes"] == (scored_run / "images" / f"{row['key']}.png").read_bytes()
    assert _export(scored_run, tmp_path / "j", "jsonl") == 0
    lines = [json.loads(x) for x in (tmp_path / "j" / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and all(Path(x["path"]).is_file() for x in lines)
    assert _export(scored_run, tmp_path / "c", "csv") == 0
    with (tmp_path / "c" / "manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["path"] for r in rows} == {x["path"] for x in lines}


def test_best_and_min_score_follow_the_scores(scored_run, tmp_path):
    scores = read_scores(scored_run).to_pylist()
    best: dict[str, float] = {}
    for r in scores:
        best[r["job_id"]] = max(best.get(r["job_id"], 0.0), r["score"])
    assert _export(scored_run, tmp_path / "b", "jsonl", "--best") == 0
    got = [json.loads(x) for x in (tmp_path / "b" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["job_id"] for r in got) == sorted(best)
    assert all(r["score"] == best[r["job_id"]] for r in got)
    cut = sorted(r["score"] for r in scores)[len(scores) // 2]
    assert _export(scored_run, tmp_path / "m", "jsonl", "--min-score", str(cut)) == 0
    got = [json.loads(x) for x in (tmp_path / "m" / "manifest.jsonl").read_text().splitlines()]
    assert len(got) == sum(r["score"] >= cut for r in scores) and got
    assert all(r["score"] >= cut for r in got)


def test_bad_inputs_are_usage_errors(scored_run, tmp_path, capsys):
    assert _export(tmp_path, tmp_path / "x", "hf") == 2
    assert "not a run directory" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    assert _export(scored_run, tmp_path / "full", "csv") == 2
    assert "not empty" in capsys.readouterr().err
    # --to under a file: one line naming it, not a NotADirectoryError traceback
    (tmp_path / "a-file").write_text("")
    for fmt in ("csv", "parquet"):
        assert _export(scored_run, tmp_path / "a-file" / "out", fmt) == 2
        err = capsys.readouterr().err
        assert err.startswith("batchgen export: cannot write") and "--to" in err, err


_MEASURE = """
import json, sys, tracemalloc
import pyarrow as pa
from batchgen.export import export_run
from pathlib import Path
out = {}
for fmt in ("hf", "webdataset"):
    tracemalloc.start()
    count = export_run(sys.argv[1], Path(sys.argv[2]) / fmt, fmt, shard_images=int(sys.argv[3]))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out[fmt] = {"count": count.images, "python_peak": peak}
out["arrow_peak"] = pa.default_memory_pool().max_memory()
print(json.dumps(out))
"""


def _image_run(tmp_path: Path, jobs: int) -> tuple[Path, int]:
    """A run directory of ``jobs`` images: a synthetic log (batchgen.testing) whose images are
    real PNGs of ~64 KB each on disk, so an export that held them would show."""
    import os

    from PIL import Image

    from batchgen.testing.synthetic import Faults, synthetic_log, write_run

    # retries and 429s stay in the log (rows without images); every job ends ok
    faults = Faults(content_policy=0, never_taken=0, in_flight_at_crash=0)
    table = synthetic_log(jobs, seed=3, faults=faults)
    run = write_run(tmp_path / "big", table, jobs=jobs)
    noise = Image.frombytes("RGB", (148, 148), os.urandom(148 * 148 * 3))
    noise.save(tmp_path / "noise.png")
    data = (tmp_path / "noise.png").read_bytes()
    paths = [p for ps in table["image_paths"].to_pylist() if ps for p in ps]
    for rel in paths:
        (run / rel).write_bytes(data)
    return run, len(paths) * len(data)


def _flat_memory_round_trip(tmp_path: Path, jobs: int, shard: int, share: float) -> None:
    run, total = _image_run(tmp_path, jobs)
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(run), str(tmp_path), str(shard)],
        capture_output=True,
        text=True,
        check=True,
    )
    got: dict[str, Any] = json.loads(done.stdout)
    # Python objects and Arrow buffers at their peak: a row group's worth, not the run's
    assert got["arrow_peak"] < total * share, (got, total)
    for fmt in ("hf", "webdataset"):
        assert got[fmt]["count"] == jobs
        assert got[fmt]["python_peak"] < total * share, (fmt, got, total)
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(
        "parquet",
        data_dir=str(tmp_path / "hf" / "data"),
        split="train",
        cache_dir=str(tmp_path / "cache"),
    )
    assert ds.num_rows == jobs and ds[jobs - 1]["image"].size == (148, 148)
    wds = pytest.importorskip("webdataset")
    urls = sorted(str(p) for p in (tmp_path / "webdataset").glob("*.tar"))
    assert len(urls) == -(-jobs // shard)
    assert sum(1 for _ in wds.WebDataset(urls, shardshuffle=False)) == jobs


def test_an_export_streams_in_flat_memory(tmp_path):
    """The default set's size: 200 images (13 MB), row groups of 20."""
    _flat_memory_round_trip(tmp_path, 200, 20, 1 / 3)


@pytest.mark.slow
def test_a_thousand_image_run_exports_in_flat_memory(tmp_path):
    """1,000 images (66 MB): the peak stays at a few row groups (~7 MB measured)."""
    _flat_memory_round_trip(tmp_path, 1000, 250, 1 / 4)
