"""The typed report: ``build_report`` gives a Report whose sections are frozen dataclasses;
its JSON is the document the dict API always wrote, and every format renders from it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest

from batchgen.analyze import analyze_run
from batchgen.reports import Comparison, Report, RunReport, build, build_report, to_json
from batchgen.reports.model import ImageChecks, Rating, section_from_dict
from batchgen.testing.synthetic import Faults, synthetic_log, write_run

SCHEMA = json.loads((Path(__file__).parents[1] / "batchgen/reports/schema.json").read_text())


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    a = write_run(
        tmp_path / "a",
        synthetic_log(300, faults=Faults(rate_limit=0.2, server=0.05), seed=3),
        jobs=300,
        settings={"rpm": 600},
    )
    b = write_run(tmp_path / "b", synthetic_log(300, seed=4), jobs=300)
    return a, b


def test_the_analysis_returns_the_model_and_its_document_reads_back_key_for_key(runs) -> None:
    a, _ = runs
    for checks in (True, False):
        model = analyze_run(a, image_checks=checks)
        assert isinstance(model, RunReport)
        doc = model.to_dict()
        # order-sensitive: the document read back writes the same JSON, byte for byte
        assert json.dumps(RunReport.from_dict(doc).to_dict()) == json.dumps(doc)
        jsonschema.validate(json.loads(Report(model).to_json()), SCHEMA)
    assert isinstance(model.ratings["success_rate"], Rating)
    assert model.image_checks == ImageChecks(enabled=False)
    assert model.latency_s.p95 == doc["latency_s"]["p95"]
    assert list(doc)[:3] == ["report_version", "run_dir", "run_name"]


def test_report_json_is_the_dict_api_json_and_validates(runs) -> None:
    a, b = runs
    one = build_report(a, image_checks=False)
    assert one.to_json() == to_json(build([a], image_checks=False))
    jsonschema.validate(json.loads(one.to_json()), SCHEMA)
    pair = build_report(a, compare_to=b, image_checks=False)
    assert isinstance(pair.body, Comparison) and pair.is_comparison
    assert [r.run_dir for r in pair.runs] == [str(a), str(b)]
    doc = json.loads(pair.to_json())
    jsonschema.validate(doc, SCHEMA)
    assert doc["deltas"]["success_rate"]["delta"] == pytest.approx(
        pair.runs[1].success_rate - pair.runs[0].success_rate
    )
    assert Report.from_dict(doc).to_json() == pair.to_json()


def test_every_format_renders_from_the_model(runs, tmp_path) -> None:
    a, b = runs
    for report in (build_report(a, image_checks=False), build_report(a, compare_to=b)):
        first = report.runs[0]
        assert first.run_name in report.to_text()
        assert first.run_name in report.to_markdown()
        page = report.to_html(tmp_path / "r.html")
        assert page.startswith("<!DOCTYPE html>") and first.run_name in page
    one = build_report(a, image_checks=False)
    assert one.run is one.body
    with pytest.raises(ValueError, match="compares two runs"):
        _ = build_report(a, compare_to=b, image_checks=False).run
    assert one.write("html") == a / "report.html"


def test_sections_are_frozen_and_unknown_keys_are_refused(runs) -> None:
    a, _ = runs
    report = build_report(a, image_checks=False).run
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.jobs_total = 0  # type: ignore[misc]
    doc = report.to_dict()
    doc["latency_s"]["p42"] = 1.0
    with pytest.raises(ValueError, match=r"Latency: unknown key\(s\) \['p42'\]"):
        section_from_dict(doc)
    del doc["latency_s"]["p42"], doc["images"]
    with pytest.raises(ValueError, match="missing key 'images'"):
        section_from_dict(doc)


def test_printable_strips_control_sequences_from_every_string(runs) -> None:
    a, _ = runs
    report = build_report(a, image_checks=False).run
    dirty = dataclasses.replace(report, run_name="evil\x1b]0;title\x07name")
    assert "\x1b" not in dirty.printable().run_name
    assert dirty.printable().jobs_total == report.jobs_total
