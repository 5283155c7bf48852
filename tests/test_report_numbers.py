"""Numbers for people in every output: a run whose log holds the awkward floats real runs make
(``0.008478000000000001``, ``0.012600879399906258``, a learned limit of 985,000 req/min) is
reported as text, Markdown, JSON and HTML, and `plan --format json` quotes the demo's job file;
none shows a long fractional tail, float noise or e-notation. And the smaller wordings: a size
or quality left to the provider reads "default", "Failed jobs (2)" not "first 10 of 2",
recommendations under labels, the autopilot line over every session, the time axis in the
unit a run's length calls for."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from batchgen.cli.main import build_parser
from batchgen.cli.session import print_run_summary
from batchgen.numbers import compact, count, decimal, duration, for_json, plural, usd
from batchgen.reports import build_report
from batchgen.reports.charts import time_axis
from batchgen.reports.figures import autopilot_line, kind_label
from batchgen.testing.synthetic import table_from_rows, write_run
from tests.runhelpers import cli_env, run_cli, sim_flags

REPO = Path(__file__).resolve().parents[1]
# what people should never read: a long fractional tail, binary noise, e-notation
LONG_TAIL = re.compile(r"\d\.\d{5,}")
NOISE = re.compile(r"\d\.\d*(?:0{6,}|9{6,})\d")
E_NOTATION = re.compile(r"(?<![\w-])\d+(?:\.\d+)?e[+-]?\d+", re.IGNORECASE)
# JSON writes a float under 1e-4 as 5.8e-05 (valid, exact for scripts); a big one never as e+
E_PLUS = re.compile(r"(?<![\w-])\d+(?:\.\d+)?e\+?\d+", re.IGNORECASE)
T0 = 1_800_000_000.0


def _awkward_run(tmp_path: Path, span_s: float = 15.0) -> Path:
    rows = []
    for i in range(8):
        rows.append(
            {
                "run_id": "r",
                "session": 1 if i < 6 else 2,
                "job_id": f"job-{i}",
                "attempt": 1,
                "status": "ok",
                "final": True,
                "prompt": f"a lighthouse {i}",
                "model": "gpt-image-1",
                "quality": None if i % 2 else "medium",
                "size": None if i % 3 == 0 else "1024x1024",
                "image_paths": [],
                "image_count": 1,
                "latency_s": 0.012600879399906258 * (i + 1),
                "wait_s": 0.1 / 3,
                "finished_at": T0 + span_s * i / 8,
                "cost_usd": 0.008478000000000001 * (i + 1),
                "cost_source": "usage",
            }
        )
    for i in range(2):
        rows.append(
            {
                "run_id": "r",
                "session": 1,
                "job_id": f"bad-{i}",
                "attempt": 1,
                "status": "error",
                "final": True,
                "error_class": "content_policy",
                "error_message": "refused",
                "prompt": "no",
                "finished_at": T0 + 1 / 3,
                "http_status": 400,
            }
        )
    autopilot = {
        "adaptive": True,
        "rpm": 985000.0,
        "rpm_source": "headers",
        "concurrency": 24,
        "concurrency_source": "latency",
    }
    sessions = [
        {
            "session": 1,
            "started_at": T0 - 1,
            "ended_at": T0 + span_s,
            "how": "completed",
            "summary": {"autopilot": {**autopilot, "peak_inflight": 24, "throttled": 3}},
        },
        {
            "session": 2,
            "started_at": T0 + span_s,
            "ended_at": T0 + span_s + 2,
            "how": "completed",
            "summary": {"autopilot": {**autopilot, "peak_inflight": 1, "throttled": 1}},
        },
    ]
    return write_run(tmp_path / "run", table_from_rows(rows), jobs=10, sessions=sessions)


def _outputs(run_dir: Path) -> dict[str, str]:
    report = build_report(run_dir, image_checks=False)
    console = Console(width=120, file=io.StringIO(), color_system=None)
    report.write("text", None, console)
    page = report.to_html()
    return {
        "text": console.file.getvalue(),  # type: ignore[attr-defined]
        "md": report.to_markdown(),
        "json": report.to_json(),
        "html": re.sub(r'data:[^"]+', "", page),  # the inline images are not text
    }


def test_no_float_artefacts_in_any_format(tmp_path: Path) -> None:
    outputs = _outputs(_awkward_run(tmp_path))
    for fmt, text in outputs.items():
        assert not NOISE.findall(text), fmt
        e_notation = E_PLUS if fmt == "json" else E_NOTATION
        assert not e_notation.findall(text), (fmt, e_notation.findall(text)[:5])
        if fmt != "json":  # JSON keeps 10 significant digits for scripts that add things up
            assert not LONG_TAIL.findall(text), (fmt, LONG_TAIL.findall(text)[:5])
    doc = json.loads(outputs["json"])
    assert doc["cost_usd_total"] == round(0.008478 * 36, 10)  # exact to the cent and beyond
    text = outputs["text"]
    assert "985,000 req/min" in text
    assert "Failed jobs (2)" in text and "first 10" not in text
    for fmt in ("text", "md", "html"):
        assert "default" in outputs[fmt], fmt  # a size/quality left to the provider
        assert "│ ?" not in outputs[fmt] and "| ? |" not in outputs[fmt]


def test_the_retry_after_note_sits_under_the_figures(tmp_path: Path) -> None:
    """ "sum of Retry-After over 429 answers: an approximation" explains the figure "paused by
    429 (≈ Σ Retry-After)"; it was printed after the last table, pages below it."""
    report = build_report(_awkward_run(tmp_path), image_checks=False)
    text = _outputs(_awkward_run(tmp_path / "again"))["text"]
    note = text.index(report.run.paused_note)
    assert text.index("paused by 429") < note < text.index("Ratings"), text[:note]


def test_the_autopilot_line_covers_every_session(tmp_path: Path) -> None:
    text = " ".join(_outputs(_awkward_run(tmp_path))["text"].split())
    assert "peak 24 in flight over 2 sessions" in text  # not the last session's 1
    assert "4 × 429" in text
    alone = autopilot_line({"rpm": 1200.0, "rpm_source": "headers", "peak_inflight": 8})
    assert alone == "limits found: 1,200 req/min (x-ratelimit headers) · peak 8 in flight"
    texted = autopilot_line({"ipm": 5.0, "ipm_source": "429 text", "peak_inflight": 2})
    assert texted == "limits found: 5 img/min (the 429's text) · peak 2 in flight"


def test_recommendations_read_as_labels() -> None:
    source = (REPO / "batchgen" / "analyze" / "recommend.py").read_text(encoding="utf-8")
    kinds = set(re.findall(r'Recommendation\(\s*"([a-z_]+)"', source))
    assert "cheaper_setting_scores_as_well" in kinds
    for kind in kinds | {"stop_quota", "server"}:
        label = kind_label(kind)
        assert "_" not in label and label[0].isupper(), (kind, label)
    assert kind_label("cheaper_setting_scores_as_well") == "Cheaper setting, same scores"


def test_plan_json_rounds_money() -> None:
    out = io.StringIO()
    args = build_parser(["plan"]).parse_args(
        ["plan", str(REPO / "jobs" / "demo.jsonl"), "--format", "json"]
    )
    with contextlib.redirect_stderr(io.StringIO()):
        args.func(args, stdout=out)
    text = out.getvalue()
    assert json.loads(text)["quote"]["expected_usd"] > 0
    assert not NOISE.findall(text) and not E_NOTATION.findall(text)


def test_the_time_axis_follows_the_run_length(tmp_path: Path) -> None:
    short = build_report(_awkward_run(tmp_path / "a", span_s=15.0), image_checks=False).run
    assert time_axis([short]) == (1.0, "seconds")
    long = build_report(_awkward_run(tmp_path / "b", span_s=3600.0), image_checks=False).run
    assert time_axis([long]) == (60.0, "minutes")


def test_the_number_helpers() -> None:
    assert count(985000) == "985,000" and compact(985000) == "985k" and compact(1.2e6) == "1.2M"
    assert decimal(1e6) == "1,000,000" and decimal(0.012600879399906258) == "0.0126"
    assert duration(15) == "15 s" and duration(5400) == "1 h 30 min" and duration(600) == "10 min"
    assert usd(0.008478000000000001) == "$0.0085" and usd(1234.5) == "$1,234.50"
    assert for_json({"a": [0.008478000000000001], "b": 2}) == {"a": [0.008478], "b": 2}
    assert plural(1, "job") == "1 job" and plural(0, "job") == "0 jobs"
    assert plural(1200, "image") == "1,200 images" and plural(2, "batch", "batches") == "2 batches"


def _one_of_each_run(tmp_path: Path) -> Path:
    """Three jobs: one ok after one timed-out attempt, one refused for its content, one bad
    request: every count the report and its recommendations state is 1."""
    base = {"run_id": "r", "session": 1, "model": "gpt-image-1", "size": "1024x1024"}
    rows = [
        {**base, "job_id": "slow", "attempt": 1, "status": "error", "final": False,
         "error_class": "timeout", "error_message": "timed out", "prompt": "a lighthouse",
         "finished_at": T0, "latency_s": 60.0},
        {**base, "job_id": "slow", "attempt": 2, "status": "ok", "final": True,
         "prompt": "a lighthouse", "image_paths": [], "image_count": 1, "latency_s": 12.0,
         "finished_at": T0 + 70, "cost_usd": 0.04, "cost_source": "usage"},
        {**base, "job_id": "refused", "attempt": 1, "status": "error", "final": True,
         "error_class": "content_policy", "error_message": "refused", "prompt": "no",
         "http_status": 400, "finished_at": T0 + 1},
        {**base, "job_id": "typo", "attempt": 1, "status": "error", "final": True,
         "error_class": "bad_request", "error_message": "Unknown parameter: 'modle'.",
         "prompt": "a cat", "http_status": 400, "finished_at": T0 + 2},
    ]  # fmt: skip
    return write_run(tmp_path / "run", table_from_rows(rows), jobs=3)


def test_the_run_summary_splits_the_cost_by_model_only_when_something_was_spent(
    tmp_path: Path,
) -> None:
    base = {"run_id": "r", "session": 1, "attempt": 1, "final": True, "finished_at": T0}
    failed = {**base, "status": "error", "error_class": "network", "error_message": "refused"}
    paid = {**base, "status": "ok", "image_paths": [], "image_count": 1, "latency_s": 1.0}
    summaries = []
    bill = {"cost_usd": 0.04, "cost_source": "usage"}
    for name, rows in (
        ("unreachable", [{**failed, "job_id": m, "model": m} for m in ("dall-e-3", "gpt-image-1")]),
        ("paid", [{**paid, **bill, "job_id": m, "model": m} for m in ("dall-e-3", "gpt-image-1")]),
        # a Ctrl-C before the second model's jobs were sent
        ("stopped", [{**paid, **bill, "job_id": "a", "model": "dall-e-3"},
                     {**failed, "job_id": "b", "model": "gpt-image-1"}]),
    ):  # fmt: skip
        run_dir = write_run(tmp_path / name, table_from_rows(rows), jobs=2)
        console = Console(width=200, file=io.StringIO(), color_system=None)
        print_run_summary(run_dir, console)
        summaries.append(console.file.getvalue())  # type: ignore[attr-defined]
    unreachable, paid_run, stopped = summaries
    assert "by model" not in unreachable, unreachable  # was "dall-e-3 $0.0000, gpt-image-1 …"
    assert "by model: dall-e-3 $0.0400, gpt-image-1 $0.0400" in paid_run, paid_run
    assert "by model" not in stopped, stopped  # was "dall-e-3 $0.0400, gpt-image-1 $0.0000"


def test_a_stop_for_the_budget_names_this_run_in_its_command(tmp_path: Path) -> None:
    """--max-cost 0 ended with "→ `batchgen resume RUN_DIR --max-cost HIGHER` to finish.",
    the placeholder where the run's own directory is known."""
    row = {"run_id": "r", "session": 1, "attempt": 0, "status": "skipped", "final": False,
           "error_class": "budget", "prompt": "a lighthouse", "finished_at": T0}  # fmt: skip
    run_dir = write_run(tmp_path / "capped", table_from_rows([{**row, "job_id": "a"}]), jobs=1)
    said = [r.message for r in build_report(run_dir, image_checks=False).run.recommendations]
    assert any(f"batchgen resume {run_dir} --max-cost" in m for m in said), said
    assert not any("RUN_DIR" in m for m in said), said


def test_a_count_of_one_reads_singular(tmp_path: Path) -> None:
    """ "1 jobs were refused by the safety system" was printed at the end of the demo itself:
    every count the report, the run summary and the recommendations state agrees with it."""
    run_dir = _one_of_each_run(tmp_path)
    messages = [r.message for r in build_report(run_dir, image_checks=False).run.recommendations]
    said = " | ".join(messages)
    assert "1 job was refused by the safety system" in said, said
    assert "1 job failed as a bad request" in said, said
    assert "1 attempt timed out" in said, said
    outputs = _outputs(run_dir)
    summary = Console(width=200, file=io.StringIO(), color_system=None)
    print_run_summary(run_dir, summary)
    outputs["summary"] = summary.file.getvalue()  # type: ignore[attr-defined]
    assert "1 image in 4 attempts" in outputs["summary"], outputs["summary"]
    # line by line: a table's "max 1" above its "images saved" is no sentence
    wrong = re.compile(r"(?<![\d,.])1 (?:jobs|images|attempts|requests|rows|problems)\b")
    for fmt, text in outputs.items():
        if fmt != "json":
            assert not wrong.findall(text), (fmt, wrong.findall(text))


@pytest.mark.slow
def test_the_demo_itself_shows_no_float_artefacts(tmp_path: Path, make_sim: Any) -> None:
    """The demo's commands (run with faults, score, regenerate) against the simulator, then
    every report format scanned; about a minute, so with the slow tests (make test-slow)."""
    sim = make_sim(faults={"server": 0.1, "rate_limit": 0.05, "content_policy": 0.05})
    run_dir = tmp_path / "demo"
    steps = [
        ["run", str(REPO / "jobs" / "demo.jsonl"), "--run-dir", str(run_dir), "--yes"],
        ["score", str(run_dir), "--judge", "gpt-4o-mini"],
        ["resume", str(run_dir), "--regenerate-below", "6", "--yes"],
    ]
    texts = []
    for step in steps:
        done = run_cli([*step, *sim_flags(sim)], env=cli_env(), timeout=300)
        assert done.code in (0, 1), done.output
        texts.append(done.output)
    outputs = _outputs(run_dir)
    for fmt, text in [*outputs.items(), *(("cli", t) for t in texts)]:
        assert not NOISE.findall(text), fmt
        e_notation = E_PLUS if fmt == "json" else E_NOTATION
        assert not e_notation.findall(text), (fmt, e_notation.findall(text)[:5])
        if fmt != "json":
            assert not LONG_TAIL.findall(text), (fmt, LONG_TAIL.findall(text)[:5])
    assert (
        "Recommendations" in outputs["text"]
        and "_" not in outputs["md"].split("Recommendations")[-1].split("**")[1]
    )
