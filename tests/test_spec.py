"""YAML job specs: expansion (matrix × zip × repeat, globs, CSV variables, {a|b} variants),
stable ids, plan's per-variable counts and --max-jobs, the by-variable report checked against
the log, the HTML grid, and spec problems as FILE:LINE errors."""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path
from typing import Any

import duckdb
import pytest
from PIL import Image

from batchgen.jobs import iter_jobs, validate_file
from batchgen.jobs.spec import count, load_spec, records
from tests.runhelpers import cli_env, run_cli, sim_flags

SPEC = """\
defaults: {model: gpt-image-1-mini, quality: low, size: 1024x1024}
prompt: "A {style} photo of a {product} on {background}"
matrix:  {style: [studio, lifestyle, "flat lay [sim:content_policy]"], background: [oak, marble]}
zip:     {product: [mug, lamp], images: [photos/mug.png, photos/lamp.png]}
repeat: 2
"""


def _spec(tmp_path: Path, text: str = SPEC, name: str = "spec.yaml") -> Path:
    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    for stem, color in (("mug", "red"), ("lamp", "blue")):
        Image.new("RGB", (64, 64), color).save(photos / f"{stem}.png")
    path = tmp_path / name
    path.write_text(text)
    return path


def test_matrix_zip_repeat_expands_to_24_jobs_with_stable_ids(tmp_path: Path) -> None:
    path = _spec(tmp_path)
    first = list(iter_jobs(path))
    second = list(iter_jobs(path))
    assert len(first) == 24 == count(load_spec(path))
    assert [j.id for j in first] == [j.id for j in second]
    assert [j.fingerprint for j in first] == [j.fingerprint for j in second]
    assert len({j.id for j in first}) == 24
    job = next(j for j in first if j.id == "style=studio.background=oak.product=mug.r2")
    assert job.body["prompt"] == "A studio photo of a mug on oak"
    assert job.body["images"] == "photos/mug.png" and job.inputs[0].sha256
    assert job.vars == {
        "style": "studio",
        "background": "oak",
        "product": "mug",
        "images": "photos/mug.png",
    }
    assert "background" not in {k for k in job.body if k != "prompt" and job.body[k] == "oak"}
    validation = validate_file(path)
    assert validation.ok and validation.format == "spec" and validation.jobs == 24


def test_plan_of_a_one_job_spec_reads_singular(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text('prompt: "A {style} mug"\nmatrix:\n  style: [studio]\nmodel: gpt-image-1\n')
    done = run_cli(["plan", str(path)], env=cli_env())
    assert done.code == 0, done.output
    assert "spec: 1 job, 1 image" in done.output  # was "spec: 1 jobs, 1 images"


def test_plan_shows_24_jobs_and_per_variable_counts(tmp_path: Path) -> None:
    path = _spec(tmp_path)
    done = run_cli(["plan", str(path)], env=cli_env())
    assert done.code == 0, done.output
    assert "spec: 24 jobs, 24 images" in done.output
    assert re.search(r"style=studio\s+8\s+8", done.output)
    assert re.search(r"background=oak\s+12\s+12", done.output)
    doc = json.loads(run_cli(["plan", str(path), "--format", "json"], env=cli_env()).stdout)
    assert doc["variables"]["style"]["lifestyle"] == {"jobs": 8, "images": 8}
    assert doc["variables"]["product"] == {
        "mug": {"jobs": 12, "images": 12},
        "lamp": {"jobs": 12, "images": 12},
    }
    assert doc["edits"]["input_images"] == 24
    refused = run_cli(["plan", str(path), "--max-jobs", "23"], env=cli_env())
    assert refused.code == 2
    assert "expands to 24 jobs" in refused.output and "--max-jobs 23" in refused.output


def test_a_million_cell_matrix_is_counted_not_materialised(tmp_path: Path) -> None:
    values = ", ".join(str(i) for i in range(100))
    text = (
        "defaults: {model: gpt-image-1-mini}\nprompt: 'a {a} {b} {c}'\n"
        f"matrix: {{a: [{values}], b: [{values}], c: [{values}]}}\n"
    )
    path = tmp_path / "big.yaml"
    path.write_text(text)
    tracemalloc.start()
    spec = load_spec(path)
    assert count(spec) == 1_000_000
    stream = records(spec)
    firsts = [next(stream) for _ in range(3)]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5_000_000  # a materialised million records would take hundreds of MB
    assert [r.explicit_id for r in firsts] == ["a=0.b=0.c=0", "a=0.b=0.c=1", "a=0.b=0.c=2"]
    done = run_cli(["plan", str(path), "--max-jobs", "1000"], env=cli_env())
    assert done.code == 2 and "expands to 1,000,000 jobs (100 a × 100 b × 100 c)" in done.output


def test_glob_csv_and_variants(tmp_path: Path) -> None:
    _spec(tmp_path)
    (tmp_path / "colors.csv").write_text("color,mood\nred,calm\nteal,bold\n")
    path = _spec(
        tmp_path,
        "defaults: {model: gpt-image-1}\n"
        "prompt: 'the {stem} in {color}, {mood}, {matte|glossy}'\n"
        "images: photos/*.png\nvars_csv: colors.csv\n",
        "g.yml",
    )
    jobs = list(iter_jobs(path))
    assert len(jobs) == 2 * 2 * 2 == count(load_spec(path))
    ids = [j.id for j in jobs]
    assert "row=1.stem=lamp.v1=matte" in ids and "row=2.stem=mug.v1=glossy" in ids
    job = jobs[ids.index("row=2.stem=mug.v1=glossy")]
    assert job.body["prompt"] == "the mug in teal, bold, glossy"
    assert job.body["image"].endswith("mug.png") and job.is_edit
    assert job.vars is not None and job.vars["v1"] == "glossy" and job.vars["stem"] == "mug"


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (
            "prompt: 'a {product}'\nzip: {product: [mug, lamp], size: [1024x1024]}\n",
            ":3: zip: lists of unequal lengths (product: 2, size: 1)",
        ),
        (
            "prompt: 'a {colour} mug'\nmatrix: {color: [red]}\n",
            ":2: prompt: {colour} is not a variable (variables: color)",
        ),
        (
            "prompt: 'a mug'\nimages: [photos/mug.png, photos/nope.png]\n",
            ': job job (#1): image "photos/nope.png" does not exist',
        ),
        ("prompt: 'a {x}'\nmatrix: {x: [1]}\nrepeat: 0\n", ":4: repeat: must be a whole number"),
        ("prompt: 'a mug'\nimages: 'photos/*.gif'\n", ':3: images: the pattern "photos/*.gif"'),
        ("prompt: [unclosed\n", ":2: not valid YAML"),
    ],
    ids=["zip-unequal", "unknown-var", "missing-image", "repeat", "empty-glob", "yaml"],
)
def test_spec_problems_are_file_line_errors_and_nothing_is_sent(
    tmp_path: Path, sim: Any, text: str, expect: str
) -> None:
    path = _spec(
        tmp_path,
        "defaults: {model: gpt-image-1}\n" + text
        if "defaults" not in text and not text.startswith("prompt: [")
        else text,
    )
    for command in (
        ["plan", str(path)],
        ["run", str(path), "--run-dir", str(tmp_path / "run"), *sim_flags(sim)],
    ):
        done = run_cli(command, env=cli_env())
        assert done.code == 2, done.output
        assert f"{path}{expect}" in done.output, done.output
    assert sim.stats["received"] == 0


def test_spec_run_report_by_variable_and_grid(tmp_path: Path, sim: Any) -> None:
    path = _spec(tmp_path)
    run = tmp_path / "run"
    done = run_cli(
        ["run", str(path), "--run-dir", str(run), *sim_flags(sim), "--quiet"], env=cli_env()
    )
    assert done.code == 1, done.output  # the flat lay jobs are refused (content policy)
    glob = str(run / "log" / "*.parquet")
    expected = {
        style: (jobs, ok, cost)
        for style, jobs, ok, cost in duckdb.sql(
            f"SELECT vars->>'style', count(DISTINCT job_id), "
            f"count(DISTINCT job_id) FILTER (WHERE status = 'ok'), sum(cost_usd) "
            f"FROM read_parquet('{glob}') GROUP BY 1"
        ).fetchall()
    }
    assert set(expected) == {"studio", "lifestyle", "flat lay [sim:content_policy]"}
    report = json.loads(run_cli(["report", str(run), "--format", "json"], env=cli_env()).stdout)
    rows = {r["value"]: r for r in report["by_variable"]["style"]}
    for style, (jobs, ok, cost) in expected.items():
        assert rows[style]["jobs"] == jobs == 8
        assert rows[style]["succeeded"] == ok
        assert rows[style]["success_rate"] == ok / jobs
        assert rows[style]["cost_usd"] == pytest.approx(cost or 0.0)
    assert rows["flat lay [sim:content_policy]"]["failed"] == 8
    assert rows["studio"]["latency_p50_s"] is not None
    text = run_cli(["report", str(run)], env=cli_env()).stdout
    assert "By variable" in text and "lifestyle" in text
    md = run_cli(["report", str(run), "--format", "md"], env=cli_env()).stdout
    assert "## By variable" in md and "| style | studio | 8 |" in md

    html_done = run_cli(
        ["report", str(run), "--format", "html", "--grid", "style,product"], env=cli_env()
    )
    assert html_done.code == 0, html_done.output
    page = (run / "report.html").read_text()
    grid = page[page.index("<h2>Grid: style × product</h2>") :]
    grid = grid[: grid.index("</table>")]
    cells = re.findall(r'<td data-state="(\w+)">', grid)
    assert len(cells) == 3 * 2
    assert cells.count("failed") == 2  # the flat lay row: one cell per product
    assert grid.count('class="failed"') == 8  # 2 backgrounds × 2 repeats × 2 products
    assert grid.count("<img") == 16
    assert "Edits: input → output" in page
    bad = run_cli(["report", str(run), "--grid", "style,colour"], env=cli_env())
    assert bad.code == 2 and "'colour' is not a variable" in bad.output
