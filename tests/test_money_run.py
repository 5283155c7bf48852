"""Issue 4 (money) end to end: `batchgen plan`, `run` and `resume` on the simulator over real
HTTP, checked against a bill computed here from DESIGN.md's rates — never from the code under
test — so a wrong rate in prices.toml or a wrong formula in money/ fails these tests."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from batchgen.cli.main import main
from batchgen.runlog.reader import read_log
from batchgen.runlog.state import job_states

KEY = "sk-test-money-run-5c1d"

# DESIGN.md "Prices and model facts": USD per 1M tokens (text in, image in, image out)
TOKEN_RATES = {"gpt-image-1": (5.00, 10.00, 40.00), "gpt-image-1-mini": (2.00, 2.50, 8.00)}
# DESIGN.md: output tokens per image of the gpt-image-1 family, by quality and shape
OUTPUT_TOKENS = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}
# the source article (shared/source-article-zh.txt): flux-kontext-pro $0.035 per image
PER_IMAGE = {"flux-kontext-pro": 0.035}
PER_IMAGE_MODEL = "flux-kontext-pro"

# several qualities and sizes of gpt-image-1, gpt-image-1-mini (one left to `auto`), and a
# per-image model; prompts differ so the simulator's per-prompt counts show double sends
TEMPLATES: list[dict[str, Any]] = [
    {"model": "gpt-image-1", "quality": "low", "size": "1024x1024"},
    {"model": "gpt-image-1", "quality": "medium", "size": "1536x1024"},
    {"model": "gpt-image-1", "quality": "high", "size": "1024x1536", "n": 2},
    {"model": "gpt-image-1", "quality": "high", "size": "1024x1024"},
    {"model": "gpt-image-1-mini", "quality": "low", "size": "1024x1024", "n": 3},
    {"model": "gpt-image-1-mini", "quality": "medium", "size": "1024x1536"},
    {"model": "gpt-image-1-mini", "quality": "auto"},
    {"model": PER_IMAGE_MODEL, "size": "1024x1024", "n": 2},
]
SUBJECTS = ("a fox in snow", "a harbour at dusk", "a café on a rainy street", "an old lighthouse")
JOBS = [
    {**TEMPLATES[i % len(TEMPLATES)], "prompt": f"job {i}: {SUBJECTS[i % len(SUBJECTS)]}"}
    for i in range(48)
]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def money_sim(make_sim):
    # a little latency so that 16 workers really overlap at the budget's edge
    return make_sim(extra_models=(PER_IMAGE_MODEL,), latency_mean=0.01, latency_jitter=0.005)


def write_jobs(path: Path, jobs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(j, ensure_ascii=False) + "\n" for j in jobs), "utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what came before
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def plan_json(capsys: pytest.CaptureFixture[str], jobfile: Path, *extra: str) -> dict[str, Any]:
    code, out, err = cli(capsys, "plan", str(jobfile), "--format", "json", *extra)
    assert code == 0, out + err
    return json.loads(out)


def run(capsys, sim, jobfile: Path, run_dir: Path, *extra: str) -> tuple[int, str, str]:
    return cli(
        capsys,
        "run",
        str(jobfile),
        "--base-url",
        sim.base_url,
        "--run-dir",
        str(run_dir),
        "--quiet",
        *extra,
    )


def log_rows(run_dir: Path) -> list[dict[str, Any]]:
    return read_log(run_dir).to_pylist()


def logged_total(rows: list[dict[str, Any]]) -> float:
    return math.fsum(r["cost_usd"] or 0.0 for r in rows)


# -- the bill, computed here ------------------------------------------------------------------


def resolved(job: dict[str, Any]) -> tuple[str, str]:
    """Quality and size as the simulator generates them (auto/missing: medium, square)."""
    quality = job.get("quality") or "auto"
    size = job.get("size") or "auto"
    return ("medium" if quality == "auto" else quality), ("1024x1024" if size == "auto" else size)


def bill_from_usage(row: dict[str, Any], rates: dict[str, tuple[float, float, float]]) -> float:
    """One ok row's cost from the usage figures the simulator answered (logged per row)."""
    text, image_in, image_out = rates[row["model"]]
    return (
        row["input_text_tokens"] * text
        + row["input_image_tokens"] * image_in
        + row["output_tokens"] * image_out
    ) / 1e6


def bill_from_design(
    job: dict[str, Any],
    rates: dict[str, tuple[float, float, float]] = TOKEN_RATES,
    per_image: dict[str, float] = PER_IMAGE,
) -> float:
    """One request's cost from DESIGN.md's token table: prompt tokens at ~4 characters each
    (what the simulator bills), output tokens by quality × size × n."""
    n = job.get("n", 1)
    if job["model"] in per_image:
        return per_image[job["model"]] * n
    text, _, image_out = rates[job["model"]]
    quality, size = resolved(job)
    prompt_tokens = math.ceil(len(job["prompt"]) / 4)
    return (prompt_tokens * text + OUTPUT_TOKENS[quality][size] * n * image_out) / 1e6


def worst_case(job: dict[str, Any]) -> float:
    """The most a request can be billed: every quality × size it may turn into, and one input
    token per UTF-8 byte of the prompt (a token covers at least one byte)."""
    n = job.get("n", 1)
    if job["model"] in PER_IMAGE:
        return PER_IMAGE[job["model"]] * n
    text, _, image_out = TOKEN_RATES[job["model"]]
    qualities = [job["quality"]] if job.get("quality") in OUTPUT_TOKENS else list(OUTPUT_TOKENS)
    sizes = [job["size"]] if job.get("size") in OUTPUT_TOKENS["low"] else list(OUTPUT_TOKENS["low"])
    tokens = max(OUTPUT_TOKENS[q][s] for q in qualities for s in sizes)
    return (len(job["prompt"].encode()) * text + tokens * n * image_out) / 1e6


BATCH_BILL = math.fsum(bill_from_design(j) for j in JOBS)


# -- 1 and 2: the logged cost is the bill, and the plan quotes it ---------------------------------


def test_logged_cost_is_the_bill_from_usage_and_the_table(tmp_path, money_sim, capsys):
    jobfile = write_jobs(tmp_path / "jobs.jsonl", JOBS)
    code, out, err = run(capsys, money_sim, jobfile, tmp_path / "run", "--concurrency", "8")
    assert code == 0, out + err
    rows = log_rows(tmp_path / "run")
    assert len(rows) == len(JOBS) and {r["status"] for r in rows} == {"ok"}
    by_prompt = {j["prompt"]: j for j in JOBS}
    for row in rows:
        job = by_prompt[row["prompt"]]
        if row["model"] == PER_IMAGE_MODEL:
            # no usage in a per-image answer: the table's price × images returned
            assert row["cost_source"] == "price-table"
            assert row["output_tokens"] is None
            price = PER_IMAGE[PER_IMAGE_MODEL]
            assert row["cost_usd"] == pytest.approx(price * row["image_count"], abs=1e-12)
            continue
        assert row["cost_source"] == "usage", row
        # the simulator's usage figures reached the log as DESIGN.md's token table says
        quality, size = resolved(job)
        assert row["output_tokens"] == OUTPUT_TOKENS[quality][size] * job.get("n", 1), row
        assert row["input_text_tokens"] == math.ceil(len(job["prompt"]) / 4)
        assert row["input_image_tokens"] == 0
        assert row["cost_usd"] == pytest.approx(bill_from_usage(row, TOKEN_RATES), abs=1e-12), row
    total = logged_total(rows)
    assert abs(total - BATCH_BILL) < 0.005, (total, BATCH_BILL)  # to the cent
    models = {r["model"] for r in rows}
    assert models == {"gpt-image-1", "gpt-image-1-mini", PER_IMAGE_MODEL}
    assert money_sim.stats.received == len(JOBS)


def test_plan_quotes_the_same_batch_within_5_percent_of_its_run(tmp_path, money_sim, capsys):
    jobfile = write_jobs(tmp_path / "jobs.jsonl", JOBS)
    quote = plan_json(capsys, jobfile)["quote"]
    assert money_sim.stats.received == 0  # plan sends nothing
    code, out, err = run(capsys, money_sim, jobfile, tmp_path / "run")
    assert code == 0, out + err
    actual = logged_total(log_rows(tmp_path / "run"))
    assert abs(quote["expected_usd"] - actual) / actual < 0.05, (quote["expected_usd"], actual)
    assert quote["jobs"] == len(JOBS)
    assert quote["images"] == sum(j.get("n", 1) for j in JOBS)
    # only the `auto` line is a range; its high end is the dearest thing auto can turn into
    ranges = [line for line in quote["lines"] if line["is_range"]]
    assert [(line["model"], line["quality"]) for line in ranges] == [("gpt-image-1-mini", "auto")]
    assert quote["low_usd"] < quote["expected_usd"] < quote["high_usd"]


# -- 3: the hard cap ------------------------------------------------------------------------------


RESUME_HINT = re.compile(r"To continue: batchgen resume (\S+) --max-cost ([\d.]+)")
SPENT = re.compile(r"Budget reached: spent \$([\d.]+) of --max-cost \$([\d.]+)")
NOT_SENT = re.compile(r"(\d+) jobs? (?:was|were) not sent")


@pytest.mark.parametrize("concurrency", [1, 16])
def test_half_the_quote_stops_at_the_cap_and_resume_finishes(
    tmp_path, money_sim, capsys, concurrency
):
    jobfile = write_jobs(tmp_path / "jobs.jsonl", JOBS)
    expected = plan_json(capsys, jobfile)["quote"]["expected_usd"]
    cap = expected / 2
    run_dir = tmp_path / "run"
    code, out, err = run(
        capsys,
        money_sim,
        jobfile,
        run_dir,
        "--max-cost",
        repr(cap),
        "--concurrency",
        str(concurrency),
    )
    assert code == 3, out + err
    rows = log_rows(run_dir)
    spent = logged_total(rows)
    assert spent <= cap
    # the cap, not something else, stopped it: the job refused would have passed it
    assert spent > cap - max(worst_case(j) for j in JOBS)
    ok = [r for r in rows if r["status"] == "ok"]
    refused = [r for r in rows if r["status"] == "skipped"]
    assert refused and {r["error_class"] for r in refused} == {"budget"}
    assert {r["status"] for r in rows} == {"ok", "skipped"}
    assert money_sim.stats.received == len(ok)  # a refused job was never sent
    assert job_states(run_dir).counts()["pending"] == len(refused)
    assert json.loads((run_dir / "run.json").read_text())["sessions"][0]["how"] == "stopped_budget"

    # the message says what was spent, how many were held back and the command to go on
    said_spent, said_cap = map(float, SPENT.search(out).groups())
    assert said_spent == pytest.approx(spent, abs=5e-5)
    assert said_cap == pytest.approx(cap, abs=5e-5)
    # every job without an answer was not sent: the refused ones and those never started
    assert int(NOT_SENT.search(out)[1]) == len(JOBS) - len(ok)
    if len(JOBS) - len(ok) > len(refused):
        assert f"{len(refused)} refused because" in out
    hint = RESUME_HINT.search(out)
    assert hint is not None, out
    assert hint[1] == str(run_dir) and float(hint[2]) > cap

    higher = round(expected * 1.1, 2)
    code, out, err = cli(capsys, "resume", str(run_dir), "--max-cost", str(higher), "--quiet")
    assert code == 0, out + err
    left = len(JOBS) - len(ok)
    assert f"{left} job{'' if left == 1 else 's'} to run" in out
    rows = log_rows(run_dir)
    total = logged_total(rows)
    assert total <= higher
    assert abs(total - BATCH_BILL) < 0.005
    finals = {r["job_id"]: r["status"] for r in rows if r["final"] and r["status"] == "ok"}
    assert len(finals) == len(JOBS)  # every job ok at the end
    # nothing was paid for twice across the two sessions
    assert money_sim.stats.received == len(JOBS)
    assert set(money_sim.stats.by_prompt.values()) == {1}


def test_the_suggested_resume_sends_the_job_the_cap_refused(tmp_path, money_sim, capsys):
    """A first job dearer than the whole cap is not sent, the cheaper jobs after it still are
    (the run stops only when nothing more fits), and the command the stop prints lets the
    refused job through instead of stopping again at it without sending anything."""
    big = {"prompt": "big", "model": "gpt-image-1", "quality": "high", "size": "1024x1536", "n": 10}
    small = [
        {"prompt": f"small {i}", "model": "gpt-image-1-mini", "quality": "low", "size": "1024x1024"}
        for i in range(4)
    ]
    jobfile = write_jobs(tmp_path / "jobs.jsonl", [big, *small])
    run_dir = tmp_path / "run"
    code, out, _ = run(capsys, money_sim, jobfile, run_dir, "--max-cost", "1", "--concurrency", "1")
    assert code == 3
    assert money_sim.stats.received == len(small) and "big" not in money_sim.stats.by_prompt
    assert int(NOT_SENT.search(out)[1]) == 1
    suggested = float(RESUME_HINT.search(out)[2])
    assert suggested >= worst_case(big)
    code, out, err = cli(capsys, "resume", str(run_dir), "--max-cost", str(suggested), "--quiet")
    assert code in (0, 3), out + err
    assert money_sim.stats.by_prompt["big"] == 1
    rows = log_rows(run_dir)
    assert any(r["prompt"] == "big" and r["status"] == "ok" for r in rows)
    assert logged_total(rows) <= suggested


def test_a_stop_counts_every_job_not_sent_and_suggests_a_cap_for_all_of_them(
    tmp_path, money_sim, capsys
):
    """A cap the first job does not fit stops the run with one job refused and the rest never
    started: the ending counts them all, and the cap it suggests covers the worst case of
    every job not done, so the suggested resume finishes the batch instead of stopping again
    half-way (a doubled cap of $1.00 did, for a batch quoted near $2)."""
    jobfile = write_jobs(tmp_path / "jobs.jsonl", JOBS)
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, money_sim, jobfile, run_dir, "--max-cost", "0")
    assert code == 3, out + err
    assert money_sim.stats.received == 0
    refused = [r for r in log_rows(run_dir) if r["status"] == "skipped"]
    assert int(NOT_SENT.search(out)[1]) == len(JOBS)
    assert f"{len(refused)} refused" in out and f"{len(JOBS) - len(refused)} never started" in out
    suggested = float(RESUME_HINT.search(out)[2])
    assert suggested >= math.fsum(worst_case(j) for j in JOBS) > 1.0
    code, out, err = cli(capsys, "resume", str(run_dir), "--max-cost", str(suggested), "--quiet")
    assert code == 0, out + err
    assert money_sim.stats.received == len(JOBS)
    assert logged_total(log_rows(run_dir)) <= suggested


# -- 4: constraint violations are refused before anything is sent ---------------------------------


BAD = [
    {"prompt": "fine", "model": "gpt-image-1", "quality": "low", "size": "1024x1024"},
    {"prompt": "two at once", "model": "dall-e-3", "n": 2},
    {"prompt": "a dall-e size", "model": "gpt-image-1", "size": "1792x1024"},
    {"prompt": "x" * 1001, "model": "dall-e-2", "size": "512x512"},
    {"prompt": "fine too", "model": PER_IMAGE_MODEL},
]


def test_plan_reports_constraint_violations_and_run_refuses_them(tmp_path, money_sim, capsys):
    jobfile = write_jobs(tmp_path / "bad.jsonl", BAD)
    code, out, _ = cli(capsys, "plan", str(jobfile), "--format", "json")
    assert code == 2
    problems = json.loads(out)["problems"]
    assert [(p["file"], p["line"]) for p in problems] == [(str(jobfile), n) for n in (2, 3, 4)]
    assert '"n" is 2' in problems[0]["message"] and "dall-e-3" in problems[0]["message"]
    assert "1792x1024" in problems[1]["message"] and "gpt-image-1" in problems[1]["message"]
    assert "1,001" in problems[2]["message"] and "1,000" in problems[2]["message"]

    code, out, _ = cli(capsys, "plan", str(jobfile))
    assert code == 2
    for line in (2, 3, 4):
        assert f"{jobfile}:{line}:" in out
    assert f"{jobfile}:1:" not in out and f"{jobfile}:5:" not in out

    code, out, err = run(capsys, money_sim, jobfile, tmp_path / "run")
    assert code == 2
    for line in (2, 3, 4):
        assert f"{jobfile}:{line}:" in err
    assert "nothing was sent" in err
    assert money_sim.stats.received == 0
    assert not (tmp_path / "run").exists()


# -- 5: --prices -------------------------------------------------------------------------------


OVERRIDE = """\
[models."gpt-image-1"]
image_output_per_1m = 80.0

[models."flux-kontext-pro"]
per_image = 0.05
"""


def test_a_price_override_changes_the_quote_and_the_recorded_costs(tmp_path, money_sim, capsys):
    jobfile = write_jobs(tmp_path / "jobs.jsonl", JOBS)
    prices = tmp_path / "my-prices.toml"
    prices.write_text(OVERRIDE)
    rates = {**TOKEN_RATES, "gpt-image-1": (5.00, 10.00, 80.00)}
    per_image = {PER_IMAGE_MODEL: 0.05}
    overridden_bill = math.fsum(bill_from_design(j, rates, per_image) for j in JOBS)
    assert overridden_bill > BATCH_BILL * 1.3  # the override matters for this batch

    shipped = plan_json(capsys, jobfile)["quote"]["expected_usd"]
    quoted = plan_json(capsys, jobfile, "--prices", str(prices))["quote"]["expected_usd"]
    assert shipped == pytest.approx(BATCH_BILL, rel=1e-9)
    assert quoted == pytest.approx(overridden_bill, rel=1e-9)

    run_dir = tmp_path / "run"
    code, out, err = run(capsys, money_sim, jobfile, run_dir, "--prices", str(prices))
    assert code == 0, out + err
    rows = log_rows(run_dir)
    for row in rows:
        if row["model"] == PER_IMAGE_MODEL:
            assert row["cost_usd"] == pytest.approx(0.05 * row["image_count"], abs=1e-12)
        else:
            assert row["cost_usd"] == pytest.approx(bill_from_usage(row, rates), abs=1e-12)
    assert abs(logged_total(rows) - overridden_bill) < 0.005
    settings = json.loads((run_dir / "run.json").read_text())["settings"]
    assert settings["prices"] == str(prices.resolve())


MALFORMED = {
    "value": (
        '[models."gpt-image-1"]\nimage_output_per_1m = "forty"\n',
        'models."gpt-image-1".image_output_per_1m',
    ),
    "missing": (
        '[models."my-model"]\nbilling = "tokens"\nsource = "me"\nas_of = "2026-01-01"\n'
        "text_input_per_1m = 1.0\nimage_input_per_1m = 1.0\n"
        'output_tokens = "gpt-image-1"\n',
        'models."my-model".image_output_per_1m',
    ),
    "syntax": ('[models."gpt-image-1"\nimage_output_per_1m = 40\n', "not valid TOML"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_price_file_is_a_clear_error_from_plan_and_run(
    tmp_path, money_sim, capsys, kind
):
    text, key = MALFORMED[kind]
    prices = tmp_path / "bad-prices.toml"
    prices.write_text(text)
    jobfile = write_jobs(tmp_path / "jobs.jsonl", JOBS[:4])

    code, _, err = cli(capsys, "plan", str(jobfile), "--prices", str(prices))
    assert code == 2
    assert str(prices) in err and key in err, err

    code, _, err = run(capsys, money_sim, jobfile, tmp_path / "run", "--prices", str(prices))
    assert code == 2
    assert str(prices) in err and key in err, err
    assert money_sim.stats.received == 0
    assert not (tmp_path / "run").exists()


# -- what the user sees about spend ---------------------------------------------------------------


def test_progress_and_summary_show_the_spend(tmp_path, money_sim, capsys):
    jobfile = write_jobs(tmp_path / "jobs.jsonl", JOBS[:16])
    run_dir = tmp_path / "run"
    code, out, err = cli(
        capsys,
        "run",
        str(jobfile),
        "--base-url",
        money_sim.base_url,
        "--run-dir",
        str(run_dir),
        "--concurrency",
        "4",
    )
    assert code == 0, out + err
    rows = log_rows(run_dir)
    total = logged_total(rows)
    images = sum(r["image_count"] for r in rows)
    # the quote comes first, then progress lines (not a terminal: plain lines) with the spend
    assert out.index("Estimated cost") < out.index("run dir:")
    progress = [line for line in out.splitlines() if re.match(r"\[\d+:\d\d\] \d+/16", line)]
    assert progress and progress[-1].startswith("[") and "16/16" in progress[-1]
    assert f"· ${total:.4f}" in progress[-1], progress[-1]  # then the limits in force
    summary = re.search(r"cost \$([\d.,]+) \(\$([\d.]+) per image\)", out)
    assert summary is not None, out
    assert float(summary[1].replace(",", "")) == pytest.approx(total, abs=0.005)
    assert float(summary[2]) == pytest.approx(total / images, abs=5e-5)


# -- models without a price, and asking before a large batch --------------------------------------


def test_an_unpriced_model_is_unknown_and_a_cap_needs_price_per_image(tmp_path, make_sim, capsys):
    sim = make_sim(extra_models=("mystery-model",))
    jobs = [{"prompt": f"mystery {i}", "model": "mystery-model", "n": 1 + i % 2} for i in range(6)]
    jobfile = write_jobs(tmp_path / "jobs.jsonl", jobs)

    code, out, err = run(capsys, sim, jobfile, tmp_path / "capped", "--max-cost", "1")
    assert code == 2
    assert "mystery-model" in err and "--price-per-image" in err
    assert sim.stats.received == 0 and not (tmp_path / "capped").exists()

    code, out, err = run(capsys, sim, jobfile, tmp_path / "uncapped")
    assert code == 0, out + err
    assert out.count("no price for model 'mystery-model'") == 1  # warned once, at the start
    rows = log_rows(tmp_path / "uncapped")
    assert {(r["cost_source"], r["cost_usd"]) for r in rows} == {("unknown", None)}

    code, out, err = run(
        capsys, sim, jobfile, tmp_path / "priced", "--max-cost", "1", "--price-per-image", "0.02"
    )
    assert code == 0, out + err
    rows = log_rows(tmp_path / "priced")
    assert {r["cost_source"] for r in rows} == {"price-table"}
    assert logged_total(rows) == pytest.approx(0.02 * sum(j["n"] for j in jobs))


def test_confirm_above_refuses_without_a_terminal_unless_yes(tmp_path, money_sim, capsys):
    jobfile = write_jobs(tmp_path / "jobs.jsonl", JOBS[:8])
    code, out, err = run(capsys, money_sim, jobfile, tmp_path / "asked", "--confirm-above", "0.10")
    assert code == 2
    assert "--yes" in out + err
    assert money_sim.stats.received == 0 and not (tmp_path / "asked").exists()
    code, out, err = run(
        capsys, money_sim, jobfile, tmp_path / "yes", "--confirm-above", "0.10", "--yes"
    )
    assert code == 0, out + err
    assert money_sim.stats.received == 8


def test_a_billed_answer_with_a_broken_image_is_logged_at_its_cost(tmp_path, money_sim, capsys):
    job = {
        "prompt": "a broken picture [sim:bad_base64*1]",
        "model": "gpt-image-1",
        "quality": "high",
        "size": "1024x1024",
    }
    jobfile = write_jobs(tmp_path / "jobs.jsonl", [job])
    code, out, err = run(capsys, money_sim, jobfile, tmp_path / "run")
    assert code == 1, out + err  # refused for good: sending it again would be billed again
    rows = log_rows(tmp_path / "run")
    assert [r["status"] for r in rows] == ["error"]
    # the simulator answered with usage: the refused answer was billed, and logged so
    assert logged_total(rows) == pytest.approx(bill_from_design(job))
    assert money_sim.stats.received == 1
