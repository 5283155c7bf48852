"""``batchgen plan``: FILE:LINE problems, exit status, the quote, and the quote against the
simulator's actual bill."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from batchgen.cli.commands.plan import cmd_plan
from batchgen.cli.plan import register
from batchgen.jobs import iter_jobs
from batchgen.money import cost_of_attempt, load_prices, quote
from batchgen.provider.base import Usage


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batchgen")
    register(parser.add_subparsers())
    return parser.parse_args(["plan", *argv])


def run_plan(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    args = parse(*argv)
    assert args.func.load() is cmd_plan  # the parser names the body; calling it loads it
    return args.func(args, stdout=out), out.getvalue()


def jobfile(tmp_path: Path, *bodies: dict, name: str = "jobs.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies), encoding="utf-8")
    return path


def test_clean_file_quotes_and_exits_0(tmp_path):
    path = jobfile(
        tmp_path,
        {"prompt": "a cat", "model": "gpt-image-1", "quality": "low", "size": "1024x1024"},
        {"prompt": "a dog", "model": "gpt-image-1", "quality": "low", "size": "1024x1024", "n": 3},
    )
    status, out = run_plan(str(path), "--rpm", "5")
    assert status == 0, out
    assert "gpt-image-1" in out and "low" in out and "total" in out
    # 2 × ceil(5/4)=2 text tokens at $5/M + 4 images × 272 tokens at $40/M
    assert "$0.0435" in out
    assert "--rpm 5 binds" in out


def test_model_problems_are_file_line_and_exit_2(tmp_path):
    path = jobfile(
        tmp_path,
        {"prompt": "fine", "model": "gpt-image-1"},
        {"prompt": "two", "model": "dall-e-3", "n": 2},
        {"prompt": "big", "model": "dall-e-2", "size": "2048x2048"},
        {"prompt": "x" * 4001, "model": "dall-e-3"},
        {"prompt": "styled", "model": "gpt-image-1", "style": "vivid"},
    )
    status, out = run_plan(str(path))
    assert status == 2
    lines = out.splitlines()
    assert f'{path}:2: "n" is 2 but dall-e-3 takes only n=1: split it into 2 jobs' in lines
    assert any(
        line.startswith(f'{path}:3: size "2048x2048" is not accepted by dall-e-2') for line in lines
    )
    assert any(
        line.startswith(f"{path}:4: prompt is 4,001 characters; dall-e-3 takes at most 4,000")
        for line in lines
    )
    assert any(line.startswith(f'{path}:5: gpt-image-1 does not take "style"') for line in lines)
    assert not any(line.startswith(f"{path}:1:") for line in lines)
    assert "4 problems found" in out
    assert "Estimated cost" in out  # the quote is still shown for what the file holds


def test_defaults_from_flags_are_checked(tmp_path):
    path = jobfile(tmp_path, {"prompt": "a"}, {"prompt": "b", "model": "gpt-image-1"})
    status, out = run_plan(str(path), "--model", "dall-e-3", "--n", "3")
    assert status == 2
    assert f'{path}:1: "n" is 3 but dall-e-3 takes only n=1' in out
    assert f'{path}:2: "n"' not in out  # gpt-image-1 takes n=3


def test_shape_problems_come_from_the_job_reader(tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        '{"prompt": "ok", "model": "gpt-image-1"}\n{"prompt": "bad", "n": "two"}\n{broken\n'
    )
    status, out = run_plan(str(path))
    assert status == 2
    assert f"{path}:2:" in out and f"{path}:3:" in out
    assert "fix the job file first" in out


def test_problem_count_is_bounded_but_all_are_counted(tmp_path):
    bodies = [{"prompt": f"p{i}", "model": "dall-e-3", "n": 2} for i in range(30)]
    status, out = run_plan(str(jobfile(tmp_path, *bodies)), "--max-problems", "5")
    assert status == 2
    assert sum(line.startswith(str(tmp_path)) for line in out.splitlines()) == 5
    assert "… and 25 more problems" in out


def test_json_format(tmp_path):
    path = jobfile(
        tmp_path,
        {"prompt": "a", "model": "dall-e-3", "n": 2},
        {"prompt": "b", "model": "gpt-image-1"},
        {"prompt": "c", "model": "mystery"},
    )
    status, out = run_plan(str(path), "--format", "json", "--concurrency", "2")
    assert status == 2
    doc = json.loads(out)
    assert doc["problem_count"] == 1
    assert doc["problems"][0] == {
        "file": str(path),
        "line": 1,
        "message": '"n" is 2 but dall-e-3 takes only n=1: split it into 2 jobs',
    }
    q = doc["quote"]
    assert (q["jobs"], q["images"]) == (3, 4)
    assert q["unknown_models"] == ["mystery"] and q["complete"] is False
    auto = next(line for line in q["lines"] if line["model"] == "gpt-image-1")
    assert auto["is_range"] and auto["low_usd"] < auto["expected_usd"] < auto["high_usd"]
    assert q["wall"]["bound"] == "concurrency"


def test_price_override_and_fallback_flow_into_the_quote(tmp_path):
    prices = tmp_path / "p.toml"
    prices.write_text('[models."dall-e-3"]\nper_image = 1.0\n')
    path = jobfile(
        tmp_path, {"prompt": "a", "model": "dall-e-3"}, {"prompt": "b", "model": "mystery", "n": 2}
    )
    status, out = run_plan(
        str(path), "--prices", str(prices), "--price-per-image", "0.5", "--format", "json"
    )
    assert status == 0, out
    assert json.loads(out)["quote"]["expected_usd"] == pytest.approx(2.0)


def test_bad_price_file_exits_2_with_the_message(tmp_path, capsys):
    prices = tmp_path / "p.toml"
    prices.write_text('[models."gpt-image-1"]\nimage_output_per_1m = "forty"\n')
    status, _ = run_plan(str(jobfile(tmp_path, {"prompt": "a"})), "--prices", str(prices))
    assert status == 2
    assert (
        'models."gpt-image-1".image_output_per_1m must be a number ≥ 0' in capsys.readouterr().err
    )


def test_max_cost_sentence(tmp_path):
    path = jobfile(tmp_path, *[{"prompt": "a", "model": "dall-e-3"}] * 10)  # $0.40 expected
    _, out = run_plan(str(path), "--max-cost", "0.2")
    assert "covers about 50% of the expected $0.4000" in out
    _, out = run_plan(str(path), "--max-cost", "5")
    assert "fits even at its dearest" in out


MIXED = [
    {
        "prompt": "a lighthouse at dawn",
        "model": "gpt-image-1",
        "quality": "low",
        "size": "1024x1024",
    },
    {
        "prompt": "a lighthouse at dusk, oil painting" * 5,
        "model": "gpt-image-1",
        "quality": "high",
        "size": "1536x1024",
        "n": 2,
    },
    {"prompt": "an owl", "model": "gpt-image-1"},  # auto → medium, square
    {
        "prompt": "an owl in a hat",
        "model": "gpt-image-1-mini",
        "quality": "medium",
        "size": "1024x1536",
        "n": 3,
    },
    {"prompt": "a wide river", "model": "gpt-image-2", "quality": "high", "size": "2048x1152"},
    {"prompt": "a teapot", "model": "dall-e-3", "quality": "hd", "size": "1792x1024"},
    {"prompt": "a kettle", "model": "dall-e-2", "size": "512x512", "n": 2},
]


def test_plan_quotes_within_5_percent_of_the_simulators_bill(tmp_path, sim):
    """Issue 4's acceptance: send every job to the simulator (real HTTP, the official client)
    and bill it from the answers; the plan's expected figure must be within 5%."""
    openai = pytest.importorskip("openai")
    path = jobfile(tmp_path, *(MIXED * 3))
    status, out = run_plan(str(path), "--format", "json")
    assert status == 0, out
    quoted = json.loads(out)["quote"]["expected_usd"]

    prices = load_prices()
    client = openai.OpenAI(base_url=sim.base_url, api_key="sk-test-not-a-real-key", max_retries=0)
    actual = 0.0
    sources = set()
    for job in iter_jobs(path):
        answer = client.images.generate(**job.body)
        usage = None
        if answer.usage is not None:
            details = answer.usage.input_tokens_details
            usage = Usage(
                input_tokens=answer.usage.input_tokens,
                input_text_tokens=details.text_tokens if details else 0,
                input_image_tokens=details.image_tokens if details else 0,
                output_tokens=answer.usage.output_tokens,
            )
        usd, source = cost_of_attempt(prices, job, usage, len(answer.data))
        actual += usd
        sources.add(source)
    client.close()
    assert sources == {"usage", "price-table"}  # gpt-image billed from usage, dall-e from the table
    assert actual > 0
    assert abs(quoted - actual) / actual < 0.05, (quoted, actual)


def test_quote_function_matches_plan(tmp_path):
    path = jobfile(tmp_path, *MIXED)
    _, out = run_plan(str(path), "--format", "json")
    direct = quote(iter_jobs(path), load_prices())
    assert json.loads(out)["quote"]["expected_usd"] == pytest.approx(direct.expected_usd)


class _Input(io.StringIO):
    def __init__(self, text: str, tty: bool) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_confirm_above_asks_only_when_the_quote_passes_it(tmp_path):
    from batchgen.cli.main import build_parser
    from batchgen.cli.money_args import confirm

    def parse_run(*argv: str) -> argparse.Namespace:  # `run` asks; `plan` only quotes
        return build_parser(["run"]).parse_args(["run", *argv])

    path = jobfile(tmp_path, *[{"prompt": "a", "model": "dall-e-3"}] * 10)  # up to $0.80
    q = quote(iter_jobs(path), load_prices())
    out = io.StringIO()
    assert confirm(
        q, parse_run(str(path), "--confirm-above", "1"), stdin=_Input("", True), stdout=out
    )
    assert out.getvalue() == ""  # under the threshold: no question
    args = parse_run(str(path), "--confirm-above", "0.5")
    assert confirm(q, args, stdin=_Input("y\n", True), stdout=out)
    assert "may cost up to $0.80" in out.getvalue()
    assert not confirm(q, args, stdin=_Input("\n", True), stdout=io.StringIO())
    refused = io.StringIO()
    assert not confirm(q, args, stdin=_Input("y\n", False), stdout=refused)  # no terminal
    assert "pass --yes" in refused.getvalue()
    assert confirm(
        q, parse_run(str(path), "--confirm-above", "0.5", "--yes"), stdin=_Input("", False)
    )
