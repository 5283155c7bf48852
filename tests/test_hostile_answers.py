"""Issue 11: whatever the provider answers, `batchgen run` ends with a clear one-line message
and the documented exit code — never a traceback, never a hang — and the log stays readable.

Real HTTP against tests/hostile.py (answers the simulator does not model), the real CLI in a
subprocess. Every run is checked by :func:`tests.hostile.check_run`; each test adds what its case
is about.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile import (
    MODEL,
    HostileServer,
    bomb_png,
    check_run,
    hostile_server,
    only_row,
    run,
)
from tests.runhelpers import cli_env, image_files, run_cli

INT64_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with hostile_server() as running:
        yield running


# ------------------------------------------------------------------ error.code off the shape
@pytest.mark.parametrize(
    ("case", "code", "klass", "stored_code"),
    [
        ("numeric_code", 1, "bad_request", "400"),  # OpenRouter documents a number
        ("numeric_code_402", 3, "quota", "402"),
        ("float_code", 1, "bad_request", "1.5e+300"),
        ("object_code", 1, "bad_request", None),
        ("list_code", 1, "server", None),
        ("null_code", 1, "bad_request", None),
        ("bool_code", 1, "bad_request", None),
    ],
)
def test_error_code_of_any_type_is_classified_not_crashed_on(
    server: HostileServer, tmp_path: Path, case: str, code: int, klass: str, stored_code: str | None
) -> None:
    done, run_dir = run(server, tmp_path, [{"id": "a", "prompt": case}])
    row = only_row(check_run(done, run_dir, code))
    assert (row["status"], row["error_class"], row["error_code"]) == ("error", klass, stored_code)
    assert row["error_message"]  # the provider's message (or "HTTP n"), as text
    if code == 3:
        assert "ended:  stopped (quota): " in done.stdout


def test_more_images_than_n_saves_n_and_says_so(server: HostileServer, tmp_path: Path) -> None:
    done, run_dir = run(server, tmp_path, [{"id": "a", "prompt": "many_images", "n": 2}])
    row = only_row(check_run(done, run_dir, 0))
    assert row["status"] == "ok" and row["image_count"] == 2
    assert sorted(image_files(run_dir)) == ["images/a_0.png", "images/a_1.png"]
    assert "5000 images for n=2" in row["error_message"]


def test_lying_usage_never_lowers_the_spend(server: HostileServer, tmp_path: Path) -> None:
    cases = ["ok", "usage_negative", "usage_text", "usage_huge", "usage_nan", "usage_zero"]
    done, run_dir = run(server, tmp_path, [{"id": c, "prompt": c} for c in cases])
    rows = {r["job_id"]: r for r in check_run(done, run_dir, 0)}
    assert {r["status"] for r in rows.values()} == {"ok"}
    table_price = rows["ok"]["cost_usd"]  # no usage in the answer: the table's price
    assert rows["ok"]["cost_source"] == "price-table" and table_price > 0
    for case in cases[1:]:
        row = rows[case]
        assert row["cost_usd"] >= table_price * 0.999, (case, row["cost_usd"], table_price)
        assert row["cost_usd"] < 1.0, (case, row["cost_usd"])  # nor an absurd one
        for column in ("input_tokens", "output_tokens", "input_text_tokens"):
            assert 0 <= (row[column] or 0) <= INT64_MAX, (case, column, row[column])
    for case in ("usage_negative", "usage_text", "usage_huge", "usage_nan"):
        assert "usage ignored" in rows[case]["error_message"], case
    assert rows["usage_zero"]["cost_source"] == "usage"  # plausible, floored at the table


@pytest.mark.parametrize("case", ["endless", "gzip_bomb"])
def test_an_answer_too_big_is_cut_off(server: HostileServer, tmp_path: Path, case: str) -> None:
    done, run_dir = run(server, tmp_path, [{"id": "a", "prompt": case}])
    row = only_row(check_run(done, run_dir, 1))
    assert row["error_class"] == "invalid_response"
    assert "larger than" in row["error_message"] and "decompression" in row["error_message"]


def test_a_decompression_bomb_image_is_an_invalid_response(
    server: HostileServer, tmp_path: Path
) -> None:
    done, run_dir = run(server, tmp_path, [{"id": "a", "prompt": "bomb_image"}])
    row = only_row(check_run(done, run_dir, 1))
    assert row["error_class"] == "invalid_response"
    assert "decompression bomb" in row["error_message"]
    assert not image_files(run_dir)


def test_report_survives_bomb_images_on_disk(server: HostileServer, tmp_path: Path) -> None:
    """Images saved by an older batchgen (or replaced on disk) that are decompression bombs:
    one past Pillow's error limit, one in its warning range. Every report format survives."""
    done, run_dir = run(
        server, tmp_path, [{"id": "a", "prompt": "ok"}, {"id": "b", "prompt": "ok"}]
    )
    check_run(done, run_dir, 0)
    (run_dir / "images" / "a_0.png").write_bytes(bomb_png(40_000, 40_000))  # 1.6 G pixels
    (run_dir / "images" / "b_0.png").write_bytes(bomb_png(10_000, 10_000))  # 100 M pixels
    out = tmp_path / "report.json"
    for fmt in ("json", "text", "md", "html"):
        target = out.with_suffix(f".{fmt}")
        report = run_cli(
            ["report", str(run_dir), "--format", fmt, "-o", str(target)], env=cli_env()
        )
        assert report.code == 0 and "Traceback" not in report.output, report.output
    checks = json.loads(out.read_text())["image_checks"]
    assert checks["counts"]["undecodable"] == 2
    details = " ".join(f["detail"] for f in checks["findings"])
    assert "DecompressionBomb" in details


# ------------------------------------------------------------------ job fields the wire refuses
def test_fields_the_encoder_refuses_are_problems_before_anything_is_sent(
    server: HostileServer, tmp_path: Path
) -> None:
    jobfile = tmp_path / "jobs.jsonl"
    deep = "[" * 300 + "]" * 300
    deeper = "[" * 100_000 + "]" * 100_000
    jobfile.write_text(
        '{"prompt": "ok"}\n'
        '{"prompt": "ok", "seed": 123456789012345678901234567890}\n'
        f'{{"prompt": "ok", "extra": {deep}}}\n'
        '{"prompt": "ok", "weight": 1e400}\n'
        f'{{"prompt": "ok", "extra": {deeper}}}\n'
        '{"prompt": "ok", "seed": -9223372036854775809}\n'
    )
    before = len(server.prompts)
    run_dir = tmp_path / "run"
    done = run_cli(
        ["run", str(jobfile), "--run-dir", str(run_dir), "--base-url", server.url, *MODEL],
        env=cli_env(),
    )
    check_run(done, None, 2)
    for line, words in ((2, '"seed"'), (3, '"extra"'), (4, "1e400"), (5, "nested"), (6, '"seed"')):
        assert f"{jobfile}:{line}: " in done.stderr and words in done.stderr, (line, done.stderr)
    assert f"{jobfile}:1:" not in done.stderr
    assert "nothing was sent" in done.stderr
    assert len(server.prompts) == before and not run_dir.exists()
