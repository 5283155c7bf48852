"""`plan` and `run` quote alike (issue 23, acceptance 5): one estimate from the same inputs,
the same concurrency default, and Batch API quotes that compare like with like."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from batchgen.analyze.savings import default_price_lookup
from batchgen.cli.main import build_parser, main
from batchgen.config import DEFAULT_CONCURRENCY_CAP

ROOT = Path(__file__).resolve().parent.parent
WALL = re.compile(r"Minimum wall time: (\S+) \(([^;]+); assuming (\S+) s")
TOTAL = re.compile(r"│ total .*?(\$[^│]*)│")


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-ESTIMATE-0000")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def _plan(argv: list[str]) -> str:
    args = build_parser().parse_args(["plan", *argv])
    out = io.StringIO()
    args.func(args, stdout=out)
    return out.getvalue()


def test_plan_and_run_give_the_same_estimate(
    tmp_path: Path, make_sim, capsys: pytest.CaptureFixture[str]
) -> None:
    # 600 requests: the in-flight cap binds the wall time, so the concurrency default counts
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(f"a lamp, take {i}\n" for i in range(600)), encoding="utf-8")
    planned = _plan([str(jobs)])
    sim = make_sim()
    # a run stopped by its budget before the first request: only its quote matters here
    code = main(
        [
            "run",
            str(jobs),
            "--base-url",
            sim.base_url,
            "--run-dir",
            str(tmp_path / "run"),
            "--max-cost",
            "0.000001",
            "--yes",
        ]
    )
    ran = capsys.readouterr().out
    assert code == 3 and sim.stats.received == 0
    assert WALL.search(planned) and WALL.search(ran)
    assert WALL.findall(planned) == WALL.findall(ran)
    assert f"--concurrency {DEFAULT_CONCURRENCY_CAP} binds" in planned
    assert TOTAL.findall(planned) == TOTAL.findall(ran)


def test_plan_and_run_help_state_the_same_concurrency_default() -> None:
    def concurrency_help(command: str) -> str:
        parser = build_parser()
        sub = next(a for a in parser._actions if a.dest == "command")
        action = next(
            a for a in sub.choices[command]._actions if "--concurrency" in a.option_strings
        )
        return " ".join(str(action.help).split())

    for command in ("plan", "run"):
        assert str(DEFAULT_CONCURRENCY_CAP) in concurrency_help(command), command
    assert "8" not in concurrency_help("plan").replace("256", "")


def test_batch_quote_compares_the_same_jobs_with_live() -> None:
    out = _plan([str(ROOT / "jobs" / "demo.jsonl"), "--via", "batch"])
    line = next(ln for ln in out.splitlines() if ln.startswith("--via batch"))
    # the Batch API is half price for the models it prices: 50 % of live for the same jobs,
    # not 29 % of a live total that still counts dall-e-3
    assert "50% of live" in line, line
    assert "no Batch API price for dall-e-3" in line and "left out of both totals" in line


def test_a_batch_runs_recommendations_use_batch_prices() -> None:
    live = default_price_lookup()
    batch = default_price_lookup(batch=True)
    assert live is not None and batch is not None
    one = live("gpt-image-1", "medium", "1024x1024")
    half = batch("gpt-image-1", "medium", "1024x1024")
    assert one is not None and half == pytest.approx(one / 2)
    assert batch("dall-e-3", "standard", "1024x1024") is None  # no batch price: no advice


def _seconds(text: str) -> float:
    """rich duration text (5s, 1m05s, 1h02m) → seconds."""
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    assert m and text, text
    h, mi, s = (int(g or 0) for g in m.groups())
    return h * 3600 + mi * 60 + s


def test_a_runs_real_time_on_the_simulator_falls_within_the_stated_band(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from batchgen.runlog.reader import read_log

    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(f"a vase, take {i}\n" for i in range(40)), encoding="utf-8")
    run_dir = tmp_path / "run"
    # the built-in simulator: the run knows its latency and quotes with it
    code = main(
        [
            "run",
            str(jobs),
            "--provider",
            "sim",
            "--sim-latency",
            "0.4",
            "--sim-tiny",
            "--run-dir",
            str(run_dir),
            "--yes",
        ]
    )
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    assert "assuming 0.4 s per request" in out, out
    band = re.search(r"expect (\S+)–(\S+) with the autopilot's slow start", out)
    assert band, out
    low, high = _seconds(band.group(1)), _seconds(band.group(2))
    log = read_log(run_dir, ["queued_at", "finished_at"]).to_pylist()
    took = (max(r["finished_at"] for r in log) - min(r["queued_at"] for r in log)).total_seconds()
    # the stated band, to the second it is printed in
    assert low - 0.5 <= took <= high + 0.5, (took, band.group(0))


def test_the_quote_before_a_model_latency_sim_run_assumes_each_models_latency_scaled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make demo`'s quote said "assuming 0 s per request" (the simulator's latency_mean, unused
    under --sim-model-latency) while every answer took the model's usual latency × scale."""
    from batchgen.provider.typical import mean_of, typical_latency

    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        '{"prompt": "a", "model": "gpt-image-1", "quality": "high"}\n'
        '{"prompt": "b", "model": "gpt-image-1-mini", "quality": "low", "size": "1024x1536"}\n',
        encoding="utf-8",
    )
    common = ["--provider", "sim", "--max-cost", "1e-9", "--yes"]
    scaled = [*common, "--run-dir", str(tmp_path / "a"), "--sim-model-latency"]
    scaled += ["--sim-time-scale", "0.05"]
    # a budget too small for any job: the quote is printed, nothing is sent
    assert main(["run", str(jobs), *scaled]) == 3
    out = " ".join(capsys.readouterr().out.split())
    high = mean_of(typical_latency("gpt-image-1", "high"))
    low = mean_of(typical_latency("gpt-image-1-mini", "low", "1024x1536"))
    assert 40 < high < 60 and 5 < low < 12  # the models' own figures, not one default
    assert f"assuming {(high + low) / 2 * 0.05:.3g} s per request" in out, out

    # one mean latency for all: --sim-latency is scaled alike
    flat = [*common, "--run-dir", str(tmp_path / "b"), "--sim-latency", "4"]
    flat += ["--sim-time-scale", "0.5"]
    assert main(["run", str(jobs), *flat]) == 3
    assert "assuming 2 s per request" in " ".join(capsys.readouterr().out.split())
