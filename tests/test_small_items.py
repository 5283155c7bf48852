"""The smaller first-hour items of issue 23: each command names itself, a taken run directory
says how to go on, the simulator lists its models (SDK clients call it first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.cli.main import main


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SMALL-0000")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def test_collect_on_a_directory_without_a_run_names_collect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["collect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("batchgen collect: ") and "batchgen resume:" not in err


def test_a_second_run_into_the_same_directory_says_how_to_go_on(
    tmp_path: Path, sim, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("a kettle\n", encoding="utf-8")
    run_dir = tmp_path / "runs" / "demo"
    argv = ["run", str(jobs), "--base-url", sim.base_url, "--run-dir", str(run_dir), "--quiet"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"batchgen resume {run_dir}" in err  # reuse it
    assert f"--run-dir {run_dir}-2" in err  # or a new directory, named
    assert "leave --run-dir out" in err


def test_the_simulator_lists_its_models_to_the_openai_client(sim) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=sim.base_url, api_key="sk-test-SMALL-0000")
    ids = {m.id for m in client.models.list()}
    assert {"gpt-image-1", "gpt-image-1-mini", "dall-e-3"} <= ids
    assert client.models.retrieve("gpt-image-1").id == "gpt-image-1"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_the_scores_folder_is_a_pure_parquet_dataset(tmp_path: Path) -> None:
    """best.json and scorer.json live beside run.json: pyarrow.dataset reads scores/ as is,
    and the readers (the report's quality figures) still find the scorer and the best images."""
    import pyarrow.dataset as ds

    from batchgen.quality.store import best_path, load_scorer, save_best, save_scorer

    run_dir = tmp_path / "run"
    scores = run_dir / "scores"
    scores.mkdir(parents=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"image_path": ["images/a_0.png"], "score": [7.0]}),
        scores / "part-00001-000001.parquet",
    )
    (scores / "scorer.json").write_text('{"id": "old"}')  # as an older version left it
    assert load_scorer(run_dir) == {"id": "old"}  # still read
    save_scorer(run_dir, {"id": "judge"})
    save_best(run_dir, {"a": {"image_path": "images/a_0.png", "score": 7.0}})
    assert load_scorer(run_dir) == {"id": "judge"}
    assert best_path(run_dir) == run_dir / "best.json" and best_path(run_dir).exists()
    assert ds.dataset(scores).to_table().num_rows == 1  # no JSON file in the dataset's way


def test_a_refused_detach_leaves_no_run_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("a kettle\n", encoding="utf-8")
    run_dir = tmp_path / "runs" / "detached"
    code = main(
        [
            "run",
            str(jobs),
            "--provider",
            "sim",
            "--via",
            "batch",
            "--detach",
            "--run-dir",
            str(run_dir),
        ]
    )
    assert code == 2 and "--detach needs a provider" in capsys.readouterr().err
    assert not (run_dir / "run.lock").exists() and not run_dir.exists()


def test_a_second_cancel_says_there_is_nothing_to_cancel(
    tmp_path: Path, make_sim, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = make_sim(batch_seconds=600)  # the batch stays open at the provider
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("a kettle\na teapot\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    code = main(
        [
            "run",
            str(jobs),
            "--base-url",
            sim.base_url,
            "--via",
            "batch",
            "--detach",
            "--run-dir",
            str(run_dir),
            "--yes",
            "--quiet",
        ]
    )
    assert code == 0
    assert main(["cancel", str(run_dir)]) == 0
    assert "cancelled 1 batch(es)" in capsys.readouterr().out
    assert main(["cancel", str(run_dir)]) == 0
    again = " ".join(capsys.readouterr().out.split())
    assert again.startswith("nothing to cancel: no batch of") and "batchgen collect" in again


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_a_job_file_of_dash_is_read_from_stdin_and_kept_for_resume(
    tmp_path: Path, sim, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = b'id,prompt,model\nmug,"a mug, steaming",gpt-image-1-mini\n,a cat,\n'
    _stdin(monkeypatch, csv)
    assert main(["plan", "-"]) == 0
    assert "total" in capsys.readouterr().out
    _stdin(monkeypatch, csv)
    run_dir = tmp_path / "run"
    argv = ["run", "-", "--base-url", sim.base_url, "--run-dir", str(run_dir), "--quiet"]
    assert main(argv) == 0
    kept = run_dir / "stdin-jobs.csv"
    assert kept.read_bytes() == csv and sim.stats["ok"] == 2
    capsys.readouterr()
    assert main(["resume", str(run_dir), "--quiet"]) == 0  # reads the kept copy again
    assert "nothing to resume: 2 jobs done" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("data", "suffix"),
    [
        (b'{"prompt": "x"}\n', ".jsonl"),
        (b"prompt,size\nx,auto\n", ".csv"),
        (b"prompt: a {s} mug\nmatrix:\n  s: [red]\n", ".yaml"),
        (b"a mug, red\n", ".txt"),
    ],
)
def test_stdins_format_is_recognised(data: bytes, suffix: str) -> None:
    from batchgen.cli.stdin import suffix_of

    assert suffix_of(data) == suffix


def test_an_empty_stdin_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, b"")
    assert main(["plan", "-"]) == 2
    err = capsys.readouterr().err
    assert 'job file "-" (stdin) is empty' in err and "Traceback" not in err
