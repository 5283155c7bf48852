"""--images-to s3://... against a real S3 API (moto's server, tests/s3server.py) and the real
simulator over HTTP, through the real CLI: every image is an object, the log rows name them,
the scorer, the HTML report and the export read them there, a resume adopts the objects a
crash left without their rows (and sends again a job whose object was cut short), and neither
the API key nor the storage credentials reach a file, a row, an object or an output line."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from batchgen.quality.store import read_scores
from batchgen.testing.s3server import STORAGE_SECRETS, S3Server, s3_server, scan_for, with_s3
from tests.runhelpers import (
    MODEL_FLAGS,
    SECRET_KEY,
    Cli,
    cli_env,
    log_table,
    ok_counts,
    run_cli,
    sim_flags,
    write_text_jobs,
)

pytestmark = pytest.mark.timeout(120)
BUCKET = "shots"
SECRETS = (SECRET_KEY, *STORAGE_SECRETS)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        server.make_bucket(BUCKET)
        yield server


def _env(s3: S3Server, **kw: str) -> dict[str, str]:
    return with_s3(cli_env(**kw), s3)


def _run(tmp_path: Path, sim, s3: S3Server, prefix: str, jobs: int, *extra: str) -> Path:
    jobfile = write_text_jobs(tmp_path / "jobs.txt", (f"object job {i}" for i in range(jobs)))
    run_dir = tmp_path / "run"
    done = run_cli(
        [
            "run",
            str(jobfile),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--images-to",
            f"s3://{BUCKET}/{prefix}/",
            "--yes",
            *extra,
        ],
        env=_env(s3),
    )
    assert done.code == 0, done.output
    _no_secret(done.output)
    return run_dir


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret.lower() not in text.lower(), secret


def test_every_image_is_an_object_the_rows_name_and_every_reader_reads_it(
    tmp_path: Path, sim, s3: S3Server
) -> None:
    """A spec run (4 jobs of two variables, n = 2) to s3://: every image an object its row
    names. What reads the images after the run reads them there: the scorer, the report's
    contact sheet, grid and weakest images (each object's thumbnail made once, cached under
    RUN_DIR/cache/thumbs, embedded in the page), the dataset export."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        'prompt: "a {style} {product}"\nmatrix: {style: [studio, oak], product: [mug, lamp]}\n'
    )
    run_dir = tmp_path / "run"
    flags = [*MODEL_FLAGS, *sim_flags(sim), "--images-to", f"s3://{BUCKET}/run1/", "--n", "2"]
    done = run_cli(
        ["run", str(spec), "--run-dir", str(run_dir), *flags, "--yes", "--quiet"], env=_env(s3)
    )
    assert done.code == 0, done.output
    rows = log_table(run_dir, ["job_id", "status", "image_paths", "image_bytes"]).to_pylist()
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    objects = s3.objects(BUCKET, "run1/")
    images = {k: v for k, v in objects.items() if k.endswith(".png")}
    logged = [p for r in rows for p in r["image_paths"]]
    # every image an object, named by its row, nothing local
    assert sorted(logged) == sorted(f"s3://{BUCKET}/{k}" for k in images)
    assert len(images) == 8 and all(v.startswith(b"\x89PNG") for v in images.values())
    assert sum(r["image_bytes"] for r in rows) == sum(len(v) for v in images.values())
    assert list((run_dir / "images").iterdir()) == []
    # the log, its checks and run.json beside the images, readable from the bucket
    assert any(k.startswith("run1/log/") and k.endswith(".parquet") for k in objects)
    assert json.loads(objects["run1/run.json"])["settings"]["images_to"] == f"s3://{BUCKET}/run1"

    # the judge scores the objects
    scored = run_cli(
        ["score", str(run_dir), "--judge", "gpt-4o-mini", *sim_flags(sim), "--quiet"],
        env=_env(s3),
    )
    assert scored.code == 0, scored.output
    scores = read_scores(run_dir).to_pylist()
    assert sorted(r["image_path"] for r in scores if r["status"] == "ok") == sorted(logged)

    html_report = ["report", str(run_dir), "--format", "html", "--grid", "style,product"]
    report = run_cli(html_report, env=_env(s3))
    assert report.code == 0, report.output
    page = (run_dir / "report.html").read_text()
    assert "cannot decode" not in page
    assert '<h3>Weakest images</h3><div class="sheet"><figure>' in page
    # the contact sheet and the grid link every object by its URI; each picture a thumbnail
    # embedded in the page: 8 on the sheet, 8 in the grid, the weakest images
    assert all(page.count(f'href="{uri}"') >= 2 for uri in logged)
    assert page.count("data:image/jpeg;base64,") >= 8 + 8 + 1
    assert len(list((run_dir / "cache" / "thumbs").iterdir())) == 8  # once per object
    assert "missing" not in report.output

    # the dataset export reads the objects: a webdataset shard with the eight images
    out = tmp_path / "wds"
    wds = ["export", str(run_dir), "--to", str(out), "--format", "webdataset"]
    exported = run_cli(wds, env=_env(s3))
    assert exported.code == 0, exported.output
    with tarfile.open(next(out.glob("*.tar"))) as tar:
        pngs = [tar.extractfile(m) for m in tar.getmembers() if m.name.endswith(".png")]
        assert len(pngs) == 8 and all(f and f.read().startswith(b"\x89PNG") for f in pngs)

    # a second report reads the cached thumbnails: the objects may be gone by then
    for key in images:
        s3.client().delete_object(Bucket=BUCKET, Key=key)
    assert run_cli(html_report, env=_env(s3)).code == 0
    assert (run_dir / "report.html").read_text().count("data:image/jpeg;base64,") >= 8 + 8 + 1

    # no key and no storage credential in any file of the run (the page among them), any
    # object, any output
    assert scan_for(run_dir, SECRETS) == []
    for output in (done.output, scored.output, report.output, exported.output):
        _no_secret(output)
    for key, data in s3.objects(BUCKET, "run1/").items():
        assert not any(s.lower().encode() in data.lower() for s in SECRETS), key


def test_resume_adopts_the_objects_a_crash_left_and_resends_a_short_one(
    tmp_path: Path, make_sim, s3: S3Server
) -> None:
    # four requests answered together; the third one's row is never written (kill -9 right
    # after its upload), and no row of the two before reached the log either (flushed ~1 s:
    # the answers come at 0.05 s so the uploads end well before it; at 0.3 s the first flush
    # sometimes came first and logged a row, leaving one orphan)
    sim = make_sim(latency_mean=0.05, seed=7)
    jobfile = write_text_jobs(tmp_path / "jobs.txt", (f"crash job {i}" for i in range(8)))
    run_dir = tmp_path / "run"
    url = f"s3://{BUCKET}/crash/"
    cli = Cli(
        [
            "run",
            str(jobfile),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--images-to",
            url,
            "--concurrency",
            "4",
            "--yes",
        ],
        env=_env(s3, crash_at="image:before_row:3"),
    )
    assert cli.finish().code == 137
    journal = [
        json.loads(line)
        for path in sorted((run_dir / "state").glob("uploads-*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    done_ids = set(ok_counts(run_dir))
    orphans = [j for j in journal if j["job"] not in done_ids]
    assert len(orphans) >= 2, journal
    # one object cut short after the crash: that job must be sent again, not adopted
    short = orphans[-1]
    key = short["objects"][0][0].removeprefix(f"s3://{BUCKET}/")
    s3.put(BUCKET, key, s3.objects(BUCKET, key)[key][:100])
    sent_before = sim.stats.snapshot(timeline=False)["by_prompt"]

    resumed = run_cli(["resume", str(run_dir), "--quiet", *sim_flags(sim)], env=_env(s3))
    assert resumed.code == 0, resumed.output
    _no_secret(resumed.output)
    assert "not adopted" in resumed.output and "bytes" in resumed.output
    rows = log_table(run_dir, ["job_id", "prompt", "status", "cost_source", "image_paths"])
    ok = [r for r in rows.to_pylist() if r["status"] == "ok"]
    assert sorted(r["job_id"] for r in ok) == sorted({r["job_id"] for r in ok})  # once each
    assert len(ok) == 8
    by_job = {r["job_id"]: r for r in ok}
    recovered = {r["job_id"] for r in ok if r["cost_source"] == "recovered"}
    assert recovered == {j["job"] for j in orphans} - {short["job"]}
    # never paid twice for an object that reached the store; the short one's job was sent
    # again (as were the requests in flight at the kill, which never reached the store)
    sent = sim.stats.snapshot(timeline=False)["by_prompt"]
    again = {p for p, n in sent.items() if n > sent_before.get(p, 0) and sent_before.get(p)}
    assert again.isdisjoint(by_job[j]["prompt"] for j in recovered)
    assert by_job[short["job"]]["prompt"] in again
    assert by_job[short["job"]]["cost_source"] != "recovered"
    fixed = s3.objects(BUCKET, key)[key]
    assert len(fixed) > 100 and fixed.startswith(b"\x89PNG")
    assert all(p.startswith(f"s3://{BUCKET}/crash/") for r in ok for p in r["image_paths"])
    assert scan_for(run_dir, SECRETS) == []


def test_a_store_that_refuses_stops_the_run_pending_and_says_why_without_a_secret(
    tmp_path: Path, sim, s3: S3Server
) -> None:
    jobfile = write_text_jobs(tmp_path / "jobs.txt", (f"nowhere {i}" for i in range(3)))
    run_dir = tmp_path / "run"
    done = run_cli(
        [
            "run",
            str(jobfile),
            "--run-dir",
            str(run_dir),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--images-to",
            "s3://no-such-bucket/p/",
            "--yes",
        ],
        env=_env(s3),
    )
    assert done.code == 3, done.output  # stopped: the jobs stay pending for a resume
    assert "no-such-bucket" in done.output
    _no_secret(done.output)
    assert scan_for(run_dir, SECRETS) == []
    assert not {
        r["job_id"]
        for r in log_table(run_dir, ["job_id", "status"]).to_pylist()
        if r["status"] == "ok"
    }


@pytest.mark.slow
def test_a_thousand_images_of_300_kb_reach_the_bucket_once_each(
    tmp_path: Path, make_sim, s3: S3Server
) -> None:
    sim = make_sim(tiny=False, image_kb=300, variants=8, latency_mean=0.0, seed=3)
    run_dir = _run(tmp_path, sim, s3, "big", 500, "--n", "2", "--concurrency", "32")
    rows = log_table(run_dir, ["job_id", "status", "image_paths", "image_bytes"]).to_pylist()
    assert len(rows) == 500 and {r["status"] for r in rows} == {"ok"}
    client = s3.client()
    listed = {
        item["Key"]: item["Size"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="big/")
        for item in page.get("Contents", [])
        if item["Key"].endswith(".png")
    }
    logged = [p.removeprefix(f"s3://{BUCKET}/") for r in rows for p in r["image_paths"]]
    assert len(listed) == 1000 and sorted(listed) == sorted(logged)
    assert sum(listed.values()) == sum(r["image_bytes"] for r in rows) > 1000 * 200_000
    assert scan_for(run_dir, SECRETS) == []
