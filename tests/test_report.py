"""Report formats: JSON against its schema, text and Markdown, compare, and the CLI wiring."""

from __future__ import annotations

import argparse
import io
import json
import math
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from batchgen.cli.commands.report import cmd_report
from batchgen.cli.report import register
from batchgen.cli.session import make_console, print_run_summary
from batchgen.reports import build, to_json, write
from batchgen.testing.synthetic import Faults, synthetic_log, table_from_rows, write_run

SCHEMA = json.loads(resources.files("batchgen.reports").joinpath("schema.json").read_text())
HOSTILE = "<script>alert(1)</script> | [bold]not markup[/bold] `tick`"
GOOD = Faults(
    rate_limit=0.01,
    server=0.01,
    timeout=0,
    content_policy=0.0,
    never_taken=0,
    in_flight_at_crash=0,
    unknown_cost=0,
)
BAD = Faults(
    rate_limit=0.3,
    server=0.1,
    timeout=0.05,
    content_policy=0.05,
    never_taken=0.1,
    in_flight_at_crash=0.01,
    unknown_cost=0.02,
)


def validate(doc: dict) -> None:
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    a = write_run(
        tmp_path / "a",
        synthetic_log(800, faults=BAD, seed=1),
        jobs=800,
        settings={"rpm": 600, "timeout": 60, "api_key": "sk-live-SECRET123456789"},
    )
    b = write_run(tmp_path / "b", synthetic_log(800, faults=GOOD, seed=2), jobs=800)
    hostile = [
        {
            "run_id": "h",
            "session": 1,
            "job_id": "evil",
            "attempt": 1,
            "status": "error",
            "final": True,
            "error_class": "content_policy",
            "http_status": 400,
            "error_message": HOSTILE,
            "prompt": HOSTILE,
        }
    ]
    extra = table_from_rows(hostile)
    import pyarrow.parquet as pq

    pq.write_table(extra, a / "log" / "part-00001-900000.parquet")
    return a, b


def test_json_has_stable_keys_and_matches_schema(runs):
    a, _ = runs
    doc = json.loads(to_json(build([a])))
    validate(doc)
    for key in (
        "jobs_total",
        "jobs_succeeded",
        "jobs_failed",
        "jobs_pending",
        "success_rate",
        "attempts",
        "images",
        "latency_s",
        "images_per_min",
        "rate_limited_share",
        "cost_usd_total",
        "cost_per_image_usd",
        "errors",
        "ratings",
        "recommendations",
        "image_checks",
    ):
        assert key in doc
    assert set(doc["latency_s"]) == {"p50", "p90", "p95", "p99", "max", "mean"}
    assert doc["image_checks"]["enabled"] is True
    # the images of a synthetic run were never written: every one is reported missing
    assert doc["image_checks"]["counts"]["missing"] == doc["images"] > 0


def test_schema_rejects_a_report_missing_a_key(runs):
    a, _ = runs
    doc = json.loads(to_json(build([a], image_checks=False)))
    del doc["cost_per_image_usd"]
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


def test_secret_setting_never_reaches_any_format(runs, tmp_path):
    a, b = runs
    data = build([a, b], image_checks=False)
    outs = []
    for fmt in ("json", "md", "text", "html"):
        out = tmp_path / f"out.{fmt}"
        write(data, fmt, out)
        outs.append(out.read_text())
    assert all("SECRET123456789" not in o and "api_key" not in o for o in outs)


def test_compare_deltas_in_every_format(runs, tmp_path):
    a, b = runs
    data = build([a, b], image_checks=False)
    validate(json.loads(to_json(data)))
    ra, rb = data["runs"]
    d = data["deltas"]
    assert d["success_rate"]["delta"] == pytest.approx(rb["success_rate"] - ra["success_rate"])
    assert d["latency_p95_s"]["delta"] == pytest.approx(
        rb["latency_s"]["p95"] - ra["latency_s"]["p95"]
    )
    assert d["images_per_min"]["delta"] == pytest.approx(
        rb["images_per_min"] - ra["images_per_min"]
    )
    assert d["cost_per_image_usd"]["delta"] == pytest.approx(
        rb["cost_per_image_usd"] - ra["cost_per_image_usd"]
    )
    assert d["success_rate"]["better"] is True  # B is the clean run
    assert d["rate_limited_share"]["better"] is True

    pt = f"{d['success_rate']['delta'] * 100:+.1f} pt"
    for fmt in ("text", "md", "html"):
        out = tmp_path / f"cmp.{fmt}"
        write(data, fmt, out)
        text = out.read_text()
        assert pt in text, fmt
        assert "A: a" in text and "B: b" in text


def test_text_report_shows_figures_and_hostile_text_verbatim(runs):
    a, _ = runs
    data = build([a], image_checks=False)
    buf = io.StringIO()
    write(data, "text", console=Console(file=buf, width=200, no_color=True))
    out = buf.getvalue()
    assert f"{data['jobs_succeeded']:,}" in out and f"{data['jobs_pending']:,}" in out
    assert "[bold]not markup[/bold]" in out  # rich markup in a prompt is not interpreted
    assert "batchgen resume" in out
    assert "possibly billed twice" in out


def test_markdown_escapes_user_text(runs, tmp_path):
    a, _ = runs
    out = tmp_path / "r.md"
    write(build([a], image_checks=False), "md", out)
    md = out.read_text()
    assert "<script>" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\|" in md
    assert md.startswith("# batchgen report — a")


def test_cli_report_formats_and_default_html_path(runs, tmp_path, capsys):
    a, b = runs
    parser = argparse.ArgumentParser(prog="batchgen")
    register(parser.add_subparsers(dest="command"))

    args = parser.parse_args(["report", str(a), "--format", "json", "--no-image-checks"])
    assert args.func.load() is cmd_report
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    validate(doc)
    assert doc["image_checks"] == {"enabled": False}

    args = parser.parse_args(["report", str(a), "--format", "html", "--no-image-checks"])
    assert args.func(args) == 0
    assert (a / "report.html").read_text().startswith("<!DOCTYPE html>")

    # the text report into a pipe: 120 columns, as `run` prints there (rich alone gives 80)
    capsys.readouterr()
    args = parser.parse_args(["report", str(a), "--no-image-checks"])
    assert args.func(args) == 0
    widths = [len(line.rstrip()) for line in capsys.readouterr().out.splitlines()]
    assert 80 < max(widths) <= 120, max(widths)

    out = tmp_path / "cmp.json"
    args = parser.parse_args(
        ["report", str(a), str(b), "--format", "json", "-o", str(out), "--no-image-checks"]
    )
    assert args.func(args) == 0
    assert json.loads(out.read_text())["compare"] is True

    args = parser.parse_args(["report", str(tmp_path / "missing")])
    assert args.func(args) == 2
    assert "not a run directory" in capsys.readouterr().err

    # -o into a folder that is missing: made (as `gen -o` does); where no file can be: one line
    # naming the path and the fix, exit 2 (it was a FileNotFoundError traceback)
    nested = tmp_path / "new" / "sub" / "report.md"
    args = parser.parse_args(["report", str(a), "--format", "md", "-o", str(nested)])
    assert args.func(args) == 0 and nested.read_text().startswith("# batchgen report")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for fmt in ("text", "md", "html", "json"):
        target = blocker / f"report.{fmt}"
        args = parser.parse_args(["report", str(a), "--format", fmt, "-o", str(target)])
        assert args.func(args) == 2
        err = capsys.readouterr().err
        assert f"batchgen report: cannot write {target}" in err and "Traceback" not in err, err

    # a folder that holds no run (`batchgen report jobs`) was reported as an empty run, exit 0
    other = tmp_path / "jobs"
    other.mkdir()
    (other / "demo.jsonl").write_text('{"prompt": "a lighthouse"}\n')
    args = parser.parse_args(["report", str(other)])
    assert args.func(args) == 2
    assert f"{other} is not a run directory" in capsys.readouterr().err


def test_run_summary_is_short_and_has_the_figures(runs, capsys):
    a, _ = runs
    # the console `batchgen run` prints with: soft-wrapped, 120 columns into a pipe
    print_run_summary(a, make_console())
    out = capsys.readouterr().out
    data = build([a], image_checks=False)
    assert f"{data['jobs_succeeded']:,} succeeded" in out
    assert f"{data['jobs_pending']:,} pending of 800 jobs" in out
    assert "per image" in out and "possibly billed twice" in out
    # at most three recommendations, each whole on its line: never cut at the console's width
    # (rich cut a "fold" Text at 120 columns there), never shortened with "…"
    assert len(out.splitlines()) <= 12 and "…" not in out
    lines = out.splitlines()
    shown = data["recommendations"][:3]
    assert any(len(rec["message"]) > 120 for rec in shown)  # the case that was cut
    for rec in shown:
        assert f"→ {rec['message']}" in lines


def test_end_to_end_report_counts_equal_the_simulators(make_sim, tmp_path):
    """`batchgen run` against the simulator (real HTTP on 127.0.0.1) with known fault rates;
    the report's counts must equal what the simulator itself counted."""
    import os
    import subprocess
    import sys

    sim = make_sim(
        faults={"server": 0.15, "content_policy": 0.1, "rate_limit": 0.1},
        retry_after_s=0.01,
        seed=7,
    )
    jobs = tmp_path / "jobs.jsonl"
    n = 30
    jobs.write_text(
        "".join(json.dumps({"prompt": f"a tin robot, pose {i}"}) + "\n" for i in range(n))
    )
    run = tmp_path / "run"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-a-real-key-123"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchgen.cli.main",
            "run",
            str(jobs),
            "--base-url",
            sim.base_url,
            "--run-dir",
            str(run),
            "--model",
            "gpt-image-1",
            "--size",
            "1024x1024",
            "--quality",
            "low",
            "--concurrency",
            "8",
            "--max-attempts",
            "3",
            # fixed limits: the claim is the report's counts, and the autopilot, cutting its
            # rate at each of the random 429s, stretched 30 jobs over ~20 s
            "--no-adapt",
            "--yes",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    data = build([run], image_checks=False)
    validate(json.loads(to_json(data)))
    stats = sim.stats
    assert stats["server"] and stats["content_policy"] and stats["rate_limit"]  # faults happened
    assert data["attempts"] == stats.received
    assert data["attempts_ok"] == data["jobs_succeeded"] == data["images"] == stats["ok"]
    for cls in ("server", "content_policy", "rate_limit"):
        assert data["errors"].get(cls, 0) == stats[cls], cls
    assert data["jobs_failed_by_class"].get("content_policy", 0) == stats["content_policy"]
    assert data["jobs_succeeded"] + data["jobs_failed"] + data["jobs_pending"] == n
    assert data["rate_limited_share"] == pytest.approx(stats["rate_limit"] / stats.received)
    everything = json.dumps(data) + (run / "run.json").read_text()
    assert "sk-test-not-a-real-key-123" not in everything


def test_cli_formats_match_the_writers() -> None:
    from batchgen.cli import report as cli_report
    from batchgen.reports.output import FORMATS as WRITER_FORMATS

    assert cli_report.FORMATS == WRITER_FORMATS


def test_latency_is_rated_against_the_models_usual_latency() -> None:
    """Issue 21: a gpt-image-1 run at its usual latency is not "poor"; a FLUX run that slow is."""
    from batchgen.analyze.ratings import latency_baseline, rate_run

    figures = {"latency_p95_s": 40.0, "success_rate": 1.0, "cost_per_image_usd": 0.04}
    gpt = latency_baseline([("gpt-image-1", "medium", "1024x1024", 100)])
    flux = latency_baseline([("flux-pro-1.1", None, None, 100)])
    assert gpt is not None and flux is not None
    assert rate_run(**figures)["response_time"].rating == "poor"  # the fixed 3 / 8 / 15 s
    rated = rate_run(**figures, baseline=gpt)["response_time"]
    assert rated.rating in ("excellent", "good")
    assert rated.baseline is not None and "gpt-image-1 at medium quality" in rated.baseline
    assert rate_run(**figures, baseline=flux)["response_time"].rating == "poor"
    # twice gpt-image-1's usual p95 is past "acceptable" there too
    slow = {**figures, "latency_p95_s": 2.1 * gpt.p95_s}
    assert rate_run(**slow, baseline=gpt)["response_time"].rating == "poor"


def test_the_usual_p95_of_a_mixed_run_is_the_mixture_s_not_a_mean_of_p95s() -> None:
    """The demo's job file mixes gpt-image-1 at low, medium and high quality: its p95 sits near
    the slow group's, and the usual p95 it is judged against must be the mixture's 95th
    percentile (drawn here from the same lognormals), not the shares' mean of each group's p95
    (which called the demo's own, perfectly usual, latency "poor")."""
    import random

    from batchgen.analyze.ratings import latency_baseline
    from batchgen.provider.typical import p95_of, typical_latency

    groups = [
        ("gpt-image-1", "low", "1536x1024", 20),
        ("gpt-image-1", "medium", "1024x1024", 10),
        ("gpt-image-1", "high", "1024x1024", 5),
    ]
    base = latency_baseline(groups)
    assert base is not None
    rng = random.Random(7)
    draws = sorted(
        rng.lognormvariate(math.log(t.median_s), t.sigma)
        for model, quality, size, n in groups
        for t in [typical_latency(model, quality, size)]
        for _ in range(n * 2_000)
    )
    sampled = draws[int(0.95 * len(draws))]
    assert abs(base.p95_s - sampled) / sampled < 0.03, (base.p95_s, sampled)
    total = sum(n for *_, n in groups)
    mean_of_p95s = sum(p95_of(typical_latency(m, q, s)) * n / total for m, q, s, n in groups)
    assert sampled > 1.2 * mean_of_p95s  # what the old baseline missed
