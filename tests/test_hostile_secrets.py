"""Issue 11: the API key never reaches a file or an output line whatever field the provider
echoes it in (any letter case); a base URL's password is never stored; provider text is data,
not rich markup nor terminal control sequences. Real HTTP (tests/hostile.py), real CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchgen.errors import error_code, printable, provider_text, redact
from batchgen.jobs.model import Job
from batchgen.money import cost_of_attempt, load_prices
from batchgen.provider.base import Usage
from batchgen.provider.usage import parse_usage
from tests.hostile import HostileServer, check_run, hostile_server, run
from tests.runhelpers import SECRET_KEY, cli_env, run_cli


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with hostile_server() as running:
        yield running


# ------------------------------------------------------------------ secrets, end to end
def test_a_key_echoed_in_every_field_reaches_no_file_and_no_output(
    server: HostileServer, tmp_path: Path
) -> None:
    jobs = [{"id": "err", "prompt": "echo_key_error"}, {"id": "ok", "prompt": "echo_key_ok"}]
    done, run_dir = run(server, tmp_path, jobs)
    rows = {r["job_id"]: r for r in check_run(done, run_dir, 1)}  # key-free files and log
    # the fields it came back in are still there, redacted
    assert rows["err"]["error_code"] == "***" and "***" in rows["err"]["error_message"]
    assert rows["err"]["request_id"] == "req-***"
    assert rows["ok"]["revised_prompt"] == "made with ***" and rows["ok"]["request_id"] == "***"
    for fmt in ("text", "md", "json", "html"):
        # the terminal formats to the terminal, the others into the run dir (checked below)
        out = [] if fmt in ("text", "md") else ["-o", str(run_dir / f"report.{fmt}")]
        report = run_cli(["report", str(run_dir), "--format", fmt, *out], env=cli_env())
        assert report.code == 0 and "***" in report.stdout + (
            (run_dir / f"report.{fmt}").read_text() if out else ""
        ), fmt
        assert SECRET_KEY not in report.output and SECRET_KEY.upper() not in report.output, fmt
    check_run(done, run_dir, 1)  # nor in the reports written into the run dir


@pytest.mark.parametrize("where", ["flag", "env"])
def test_a_base_url_with_a_password_is_refused_and_never_stored(
    server: HostileServer, tmp_path: Path, where: str
) -> None:
    url = server.url.replace("http://", "http://alice:hunter2-pw@")
    jobfile = tmp_path / "jobs.jsonl"
    jobfile.write_text('{"prompt": "ok"}\n')
    run_dir = tmp_path / "run"
    env = cli_env()
    args = ["run", str(jobfile), "--run-dir", str(run_dir), "--model", "gpt-image-1"]
    if where == "flag":
        args += ["--base-url", url]
    else:
        env["OPENAI_BASE_URL"] = url
    before = len(server.prompts)
    done = run_cli(args, env=env)
    check_run(done, None, 2)
    assert "hunter2-pw" not in done.output
    assert "carries a password" in done.stderr and "alice:***@" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert len(server.prompts) == before and not run_dir.exists()


# ------------------------------------------------------------------ terminal safety, end to end
def test_markup_in_a_stop_message_is_printed_as_written(
    server: HostileServer, tmp_path: Path
) -> None:
    done, run_dir = run(server, tmp_path, [{"id": "a", "prompt": "markup_401"}])
    check_run(done, run_dir, 3)
    ended = next(line for line in done.stdout.splitlines() if line.startswith("ended:"))
    assert "[/x] bad key [bold]x[/bold]" in ended  # neither crashed on nor swallowed


def test_control_sequences_never_reach_the_terminal_or_a_text_report(
    server: HostileServer, tmp_path: Path
) -> None:
    done, run_dir = run(
        server, tmp_path, [{"id": "a", "prompt": "ansi_400"}], "--max-attempts", "1"
    )
    check_run(done, run_dir, 1)
    for fmt in ("text", "md"):
        printed = run_cli(["report", str(run_dir), "--format", fmt], env=cli_env())
        assert printed.code == 0, printed.output
        assert "\x1b" not in printed.output and "\x07" not in printed.output, fmt
        assert "cleared bold" in printed.output, fmt  # the message itself is kept
    done = run_cli(
        [
            "run",
            str(tmp_path / "jobs.jsonl"),
            "--run-dir",
            str(tmp_path / "r2"),
            "--base-url",
            server.url,
            "--max-attempts",
            "1",
            "--model",
            "gpt-image-1",
        ],
        env=cli_env(),
    )
    check_run(done, tmp_path / "r2", 1)  # the end-of-run summary (not --quiet) too


# ------------------------------------------------------------------ the functions, directly
def test_redact_catches_the_key_in_any_case_and_url_passwords() -> None:
    key = "sk-proj-AbCdEf0123456789"
    text = f"{key} {key.upper()} {key.lower()} Bearer {key.swapcase()} https://u:p4ss@h/v1"
    out = redact(text, (key,))
    assert key.lower() not in out.lower() and "p4ss" not in out
    assert "https://u:***@h/v1" in out
    assert redact("gateway-token-XYZ7 and GATEWAY-TOKEN-xyz7", ("gateway-token-xyz7",)) == (
        "*** and ***"
    )


def test_provider_text_and_error_code_take_any_json_value() -> None:
    key = "tok-1234567890"
    assert provider_text({"m": [key.upper(), 1]}, (key,)) == '{"m":["***",1]}'
    assert provider_text(None) is None and provider_text(12) == "12"
    assert len(provider_text("x" * 10_000, (key,)) or "") == 2000
    # a key straddling the cut is redacted before the cut, never left half visible
    cut = provider_text("x" * 1990 + key, (key,))
    assert cut is not None and "tok-" not in cut
    assert [error_code(v) for v in (400, "quota", None, {}, [1], True, 1.5)] == [
        "400",
        "quota",
        None,
        None,
        None,
        None,
        "1.5",
    ]


def test_printable_strips_csi_osc_and_c1_but_keeps_text() -> None:
    raw = "a\x1b[31mred\x1b[0m \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \x9b2J\x07ok\u202e"
    assert printable(raw) == "ared link ok"
    assert printable("line\none\ttab") == "line\none\ttab"
    assert printable("line\none", one_line=True) == "line one"
    assert printable("[/x] [bold]") == "[/x] [bold]"


@pytest.mark.parametrize(
    ("raw", "suspect"),
    [
        ({"input_tokens": 10, "output_tokens": 272}, False),
        ({"input_tokens": -1, "output_tokens": 272}, True),
        ({"input_tokens": "10", "output_tokens": 272}, True),
        ({"input_tokens": 10, "output_tokens": float("inf")}, True),
        ({"input_tokens": 10, "output_tokens": 1e30}, True),
        ({"input_tokens": 10, "output_tokens": 2.5}, True),
        ({"input_tokens": True}, True),
        ("lots", True),
        ({"input_tokens_details": "x", "output_tokens": 1}, True),
    ],
)
def test_usage_is_suspect_unless_every_count_is_plausible(raw: object, suspect: bool) -> None:
    usage, note = parse_usage(raw)
    assert usage is not None and usage.suspect is suspect and (note is not None) is suspect
    assert min(usage.input_tokens, usage.output_tokens) >= 0


def test_cost_is_never_below_the_table_price() -> None:
    prices = load_prices(None)
    job = Job.make(
        "a",
        1,
        {"prompt": "p", "model": "gpt-image-1", "quality": "low", "size": "1024x1024", "n": 2},
    )
    table, _ = cost_of_attempt(prices, job, None, 2)
    assert table is not None and table > 0
    zero, source = cost_of_attempt(prices, job, Usage(output_tokens=0), 2)
    assert source == "usage" and zero is not None and zero >= table * 0.99
    lying, source = cost_of_attempt(prices, job, Usage(suspect=True), 2)
    assert source == "price-table" and lying == pytest.approx(table)
    # a 200 whose images were unusable, with a lying usage: billed as what was asked for
    failed, _ = cost_of_attempt(prices, job, Usage(suspect=True), 0)
    assert failed == pytest.approx(table)
    honest, source = cost_of_attempt(prices, job, Usage(input_tokens=1, output_tokens=10**6), 2)
    assert source == "usage" and honest is not None and honest > table


# ------------------------------------------------------------------ storage credentials
def test_images_to_keeps_the_key_and_the_storage_credentials_out_of_every_file(
    server: HostileServer, tmp_path: Path
) -> None:
    """--images-to with storage credentials in the environment (as s3fs takes them) and a
    provider echoing the key: neither reaches the run dir, the images' folder (where the log
    is copied) or the output. The S3 server's version: tests/test_storage_s3.py."""
    pytest.importorskip("fsspec")
    from batchgen.testing.s3server import STORAGE_SECRETS, scan_for

    out = tmp_path / "bucket"
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    env = {**cli_env(), **dict(zip(names, STORAGE_SECRETS, strict=True))}
    jobfile = tmp_path / "jobs.jsonl"
    jobfile.write_text('{"id": "ok", "prompt": "echo_key_ok"}\n')
    run_dir = tmp_path / "run"
    done = run_cli(
        [
            "run",
            str(jobfile),
            "--run-dir",
            str(run_dir),
            "--base-url",
            server.url,
            "--quiet",
            "--model",
            "gpt-image-1",
            "--images-to",
            out.as_uri(),
        ],
        env=env,
    )
    rows = check_run(done, run_dir, 0)
    assert rows[0]["image_paths"] == [f"{out.as_uri()}/ok_0.png"]
    assert (out / "ok_0.png").exists() and list((out / "log").glob("*.parquet"))
    needles = (SECRET_KEY, *STORAGE_SECRETS)
    assert scan_for(run_dir, needles) == [] and scan_for(out, needles) == []
    assert not any(s.lower() in done.output.lower() for s in needles)
