"""The quality loop end to end: `batchgen score` with a judge model, `resume
--regenerate-below`, and the report's quality section, all through the real CLI against the
simulator over real HTTP (its chat completions endpoint is the judge)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import jsonschema
import pytest

from batchgen.money import load_prices
from batchgen.quality.store import read_scores
from batchgen.sim.chat import verdict
from tests.runhelpers import (
    SECRET_KEY,
    cli_env,
    files_holding_secret,
    image_files,
    job_ids_by_prompt,
    log_table,
    run_cli,
    secret_in_log,
    sim_flags,
    write_jsonl_jobs,
)

pytestmark = pytest.mark.timeout(240)

JOBS = 200
# 20 jobs whose first image comes out wrong, 10 at quality low and 10 at high
WRONG = {i for i in range(JOBS) if i % 20 in (3, 8)}
THRESHOLD = 6
# distinct pictures per prompt (tiny renders otherwise share 8), so sha256s are per image
SIM = {"variants": 10**9}
JUDGE = ["--judge", "gpt-4o-mini"]
QUIET = ["--yes", "--quiet"]


def _no_yes(flags: list[str]) -> list[str]:
    """`score` asks nothing before it starts: it takes no --yes."""
    return [f for f in flags if f != "--yes"]


def _jobs(path: Path) -> Path:
    return write_jsonl_jobs(
        path,
        (
            {
                "id": f"shot-{i:03d}",
                "prompt": f"product shot {i}: a ceramic mug on oak"
                + (" [sim:wrong]" if i in WRONG else ""),
                "quality": "low" if i % 2 == 0 else "high",
            }
            for i in range(JOBS)
        ),
    )


def _chat_stats(sim) -> dict:
    return sim.stats.snapshot(timeline=False)


def _usd(billed: dict, key: str, rates: tuple[float, float]) -> float:
    entry = billed.get(key) or {"input_tokens": 0, "output_tokens": 0}
    return (entry["input_tokens"] * rates[0] + entry["output_tokens"] * rates[1]) / 1e6


def _best(run_dir: Path) -> dict[str, float]:
    rows = [r for r in read_scores(run_dir).to_pylist() if r["status"] == "ok"]
    best: dict[str, float] = {}
    for r in rows:
        best[r["job_id"]] = max(best.get(r["job_id"], 0.0), r["score"])
    return best


def test_score_flags_the_wrong_ones_regenerate_fixes_them_and_costs_match(
    tmp_path: Path, make_sim
) -> None:
    sim = make_sim(**SIM)
    run_dir = tmp_path / "run"
    jobs = _jobs(tmp_path / "jobs.jsonl")
    env = cli_env()
    common = [*sim_flags(sim), *QUIET]
    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            "--model",
            "gpt-image-1",
            "--size",
            "1024x1024",
            *common,
        ],
        env=env,
    )
    assert done.code == 0, done.output
    wrong_ids = {f"shot-{i:03d}" for i in WRONG}

    # -- score: exactly the 20 wrong jobs fall below the threshold --------------------------
    done = run_cli(
        ["score", str(run_dir), *JUDGE, "--threshold", str(THRESHOLD), *_no_yes(common)],
        env=env,
        timeout=120,
    )
    assert done.code == 0, done.output
    assert f"jobs whose best image scores below {THRESHOLD}: 20 of {JOBS}" in done.output
    best = _best(run_dir)
    assert len(best) == JOBS
    assert {j for j, s in best.items() if s < THRESHOLD} == wrong_ids
    stats = _chat_stats(sim)
    judged = stats["chat"]["judged_by_sha256"]
    assert len(judged) == JOBS and set(judged.values()) == {1}
    # every verdict stored is the one the simulator gives for those bytes
    for r in read_scores(run_dir).to_pylist()[:20]:
        assert r["score"] == verdict((run_dir / r["image_path"]).read_bytes())["score"]

    # a second `score` judges nothing again
    again = run_cli(["score", str(run_dir), *_no_yes(common)], env=env)
    assert again.code == 0, again.output
    assert f"scored 0 images, {JOBS} already scored" in again.output
    assert _chat_stats(sim)["chat"]["received"] == stats["chat"]["received"]

    # -- regenerate: exactly those 20, and the new images score above --------------------
    images_before = image_files(run_dir)  # sidecars (--metadata) left out
    done = run_cli(
        [
            "resume",
            str(run_dir),
            "--regenerate-below",
            str(THRESHOLD),
            "--max-rounds",
            "3",
            *common,
        ],
        env=env,
        timeout=120,
    )
    assert done.code == 0, done.output
    assert "round 1/3: regenerating 20 jobs" in done.output
    assert "round 2/3" not in done.output  # nothing left to regenerate after one round
    log = log_table(run_dir, ["session", "job_id", "status", "image_paths", "cost_usd"])
    rows = log.to_pylist()
    last_session = max(r["session"] for r in rows)
    regenerated = {
        r["job_id"] for r in rows if r["session"] == last_session and r["status"] == "ok"
    }
    assert regenerated == wrong_ids
    new_paths = [p for r in rows if r["session"] == last_session for p in r["image_paths"] or []]
    assert all("~r2_" in p for p in new_paths) and len(new_paths) == 20
    # every old image is still there, none overwritten
    images_after = image_files(run_dir)
    assert images_before < images_after and len(images_after - images_before) == 20
    scores = read_scores(run_dir).to_pylist()
    new_scores = {r["image_path"]: r["score"] for r in scores if r["round"] == 2}
    assert set(new_scores) == set(new_paths)
    assert min(new_scores.values()) >= THRESHOLD
    assert not {j for j, s in _best(run_dir).items() if s < THRESHOLD}
    marked = json.loads((run_dir / "best.json").read_text())
    assert {j for j, b in marked.items() if b["round"] == 2} == wrong_ids
    judged = _chat_stats(sim)["chat"]["judged_by_sha256"]
    assert len(judged) == JOBS + 20 and set(judged.values()) == {1}

    # -- cost: logged == what the simulator billed, recomputed from its token counts -----
    billed = _chat_stats(sim)["billed"]
    prices = load_prices()
    judge = prices.get("gpt-4o-mini")
    image = prices.get("gpt-image-1")
    judge_usd = _usd(
        billed, "chat:gpt-4o-mini", (judge.chat_input_per_1m, judge.chat_output_per_1m)
    )
    images_usd = _usd(
        billed, "images:gpt-image-1", (image.text_input_per_1m, image.image_output_per_1m)
    )
    logged_scoring = sum(r["cost_usd"] for r in read_scores(run_dir, latest=False).to_pylist())
    logged_images = sum(r["cost_usd"] or 0 for r in rows)
    assert judge_usd > 0 and images_usd > 0
    assert logged_scoring == pytest.approx(judge_usd, rel=1e-9, abs=1e-12)
    assert logged_images == pytest.approx(images_usd, rel=1e-9, abs=1e-12)
    regen_usd = sum(r["cost_usd"] or 0 for r in rows if r["session"] == last_session)
    assert regen_usd > 0

    # -- the report: score by setting vs DuckDB on the log, and the recommendation -------
    out = tmp_path / "report.json"
    done = run_cli(["report", str(run_dir), "--format", "json", "-o", str(out)], env=env)
    assert done.code == 0, done.output
    report = json.loads(out.read_text())
    schema = json.loads(Path("batchgen/reports/schema.json").read_text())
    jsonschema.validate(report, schema)
    q = report["quality"]
    assert q["images_scored"] == JOBS + 20
    assert q["jobs_below_threshold"] == 0 and q["jobs_regenerated"] == 20
    assert q["scoring_cost_usd"] == pytest.approx(judge_usd, rel=1e-9)
    con = duckdb.connect()
    scores_glob = str(run_dir / "scores" / "*.parquet")
    log_glob = str(run_dir / "log" / "*.parquet")
    expected = con.execute(f"""
        WITH imgs AS (
            SELECT model, quality, size, unnest(image_paths) AS image_path
            FROM read_parquet('{log_glob}') WHERE status = 'ok'),
        cost AS (
            SELECT model, quality, size, sum(cost_usd) / sum(image_count) AS per_image
            FROM read_parquet('{log_glob}') WHERE status = 'ok' GROUP BY ALL)
        SELECT i.model, i.quality, i.size, count(*) AS n, avg(s.score) AS mean, c.per_image
        FROM read_parquet('{scores_glob}') s JOIN imgs i USING (image_path)
        JOIN cost c USING (model, quality, size)
        WHERE s.status = 'ok' GROUP BY ALL ORDER BY i.quality""").fetchall()
    got = sorted(
        (
            g["model"],
            g["quality"],
            g["size"],
            g["images_scored"],
            g["mean_score"],
            g["cost_per_image_usd"],
        )
        for g in q["by_setting"]
    )
    assert len(got) == len(expected) == 2
    for mine, theirs in zip(got, sorted(expected, key=lambda r: r[1]), strict=True):
        assert mine[:4] == theirs[:4]
        assert mine[4] == pytest.approx(theirs[4]) and mine[5] == pytest.approx(theirs[5])
    (high, low) = sorted(expected, key=lambda r: r[1])  # "high" < "low"
    assert low[5] < high[5]
    recs = [r for r in report["recommendations"] if r["kind"] == "cheaper_setting_scores_as_well"]
    if low[4] >= high[4] - 0.5:
        assert len(recs) == 1, report["recommendations"]
        ev = recs[0]["evidence"]
        assert ev["cheaper"]["quality"] == "low" and ev["dearer"]["quality"] == "high"
        assert ev["saving_per_image_usd"] == pytest.approx(high[5] - low[5])
        assert f"quality low averaged {low[4]:.1f} at ${low[5]:.4f}/image" in recs[0]["message"]
    else:
        assert not recs
    # with the simulator's judge, low (~7.75) and high (~8.15) are within the margin
    assert recs, f"low {low[4]:.2f} vs high {high[4]:.2f}: expected the recommendation"

    html = tmp_path / "report.html"
    done = run_cli(["report", str(run_dir), "--format", "html", "-o", str(html)], env=env)
    page = html.read_text()
    assert "Score by setting" in page and "Weakest images" in page
    assert "The image does not show what the prompt describes." in page
    assert recs[0]["message"][:40] in page
    text = run_cli(["report", str(run_dir), "--no-image-checks"], env=env)
    assert "Score by setting" in text.output

    # the key never reaches a file, a log row, a report or a message
    assert files_holding_secret(run_dir) == []
    assert not secret_in_log(run_dir)
    assert SECRET_KEY not in done.output + text.output + page


def test_judge_faults_and_429s_are_retried_and_billed_usage_counted(
    tmp_path: Path, make_sim
) -> None:
    sim = make_sim(**SIM)
    run_dir = tmp_path / "run"
    jobs = write_jsonl_jobs(
        tmp_path / "j.jsonl",
        (
            {"id": f"j{i}", "prompt": f"a red bicycle {i}" + (" [sim:wrong]" if i < 3 else "")}
            for i in range(30)
        ),
    )
    env = cli_env()
    common = [*sim_flags(sim), *QUIET]
    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            "--model",
            "gpt-image-1",
            "--size",
            "1024x1024",
            "--quality",
            "medium",
            *common,
        ],
        env=env,
    )
    assert done.code == 0, done.output
    # now the judge meets 5xx, unusable answers (billed) and rate limits
    sim.update(faults={"server": 0.15, "not_image": 0.15, "rate_limit": 0.15}, retry_after_s=0.01)
    done = run_cli(
        ["score", str(run_dir), *JUDGE, "--max-attempts", "8", *_no_yes(common)],
        env=env,
        timeout=120,
    )
    assert done.code == 0, done.output
    stats = sim.stats.snapshot(timeline=False)
    outcomes = stats["chat"]["outcomes"]
    assert outcomes.get("server") and outcomes.get("not_image") and outcomes.get("rate_limit")
    rows = read_scores(run_dir).to_pylist()
    assert len(rows) == 30 and {r["status"] for r in rows} == {"ok"}
    assert sum(r["score"] < THRESHOLD for r in rows) == 3
    assert max(r["attempts"] for r in rows) > 1
    judge = load_prices().get("gpt-4o-mini")
    billed = _usd(
        stats["billed"], "chat:gpt-4o-mini", (judge.chat_input_per_1m, judge.chat_output_per_1m)
    )
    # unusable 200s were billed by the simulator, and logged at their usage cost
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(billed, rel=1e-9)


def test_score_usage_errors(tmp_path: Path, make_sim) -> None:
    sim = make_sim(**SIM)
    run_dir = tmp_path / "run"
    jobs = write_jsonl_jobs(tmp_path / "j.jsonl", ({"prompt": f"p {i}"} for i in range(3)))
    env = cli_env()
    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            "--model",
            "gpt-image-1",
            *sim_flags(sim),
            *QUIET,
        ],
        env=env,
    )
    assert done.code == 0, done.output
    no_scorer = run_cli(["score", str(run_dir), *sim_flags(sim)], env=env)
    assert no_scorer.code == 2 and "--judge MODEL" in no_scorer.output
    missing = run_cli(
        ["score", str(run_dir), *JUDGE, "--rubric", str(tmp_path / "nope.txt"), *sim_flags(sim)],
        env=env,
    )
    assert missing.code == 2 and "--rubric" in missing.output
    # a custom rubric is a different scorer: the images are judged again under it
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("Score how well the mug is lit. JSON only.")
    assert run_cli(["score", str(run_dir), *JUDGE, *sim_flags(sim)], env=env).code == 0
    done = run_cli(
        ["score", str(run_dir), *JUDGE, "--rubric", str(rubric), *sim_flags(sim)], env=env
    )
    assert done.code == 0 and "scored 3 images" in done.output
    assert len({r["scorer"] for r in read_scores(run_dir).to_pylist()}) == 2
    assert job_ids_by_prompt(run_dir)


def test_max_cost_stops_judging_then_a_higher_cap_finishes(tmp_path: Path, make_sim) -> None:
    sim = make_sim(**SIM)
    run_dir = tmp_path / "run"
    jobs = write_jsonl_jobs(tmp_path / "j.jsonl", ({"prompt": f"a lamp {i}"} for i in range(40)))
    env = cli_env()
    common = [*sim_flags(sim), *QUIET]
    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            "--model",
            "gpt-image-1",
            "--quality",
            "low",
            "--size",
            "1024x1024",
            *common,
        ],
        env=env,
    )
    assert done.code == 0, done.output
    images_usd = sum(r["cost_usd"] for r in log_table(run_dir, ["cost_usd"]).to_pylist())
    # a judge the price table does not know cannot be capped
    unpriced = run_cli(
        ["score", str(run_dir), "--judge", "gpt-4.1", "--max-cost", "100", *_no_yes(common)],
        env=env,
    )
    assert unpriced.code == 2 and "--max-cost needs the judge's price" in unpriced.output
    cap = images_usd + 0.0015  # room for about half of the 40 verdicts
    done = run_cli(
        [
            "score",
            str(run_dir),
            *JUDGE,
            "--max-cost",
            f"{cap:.6f}",
            "--concurrency",
            "4",
            *_no_yes(common),
        ],
        env=env,
    )
    assert done.code == 3, done.output
    assert "stopped (budget)" in done.output
    scored = read_scores(run_dir, latest=False).to_pylist()
    assert 0 < len(scored) < 40
    assert images_usd + sum(r["cost_usd"] for r in scored) <= cap + 1e-12
    done = run_cli(["score", str(run_dir), "--max-cost", "10", *_no_yes(common)], env=env)
    assert done.code == 0, done.output
    judged = sim.stats.snapshot(timeline=False)["chat"]["judged_by_sha256"]
    assert len(judged) == 40 and set(judged.values()) == {1}


def test_score_store_takes_concurrent_writers(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from batchgen.quality.store import ScoreStore

    store = ScoreStore(tmp_path, 1)

    def write(i: int) -> None:
        store.add(
            [
                {
                    "job_id": f"j{i}",
                    "image_path": f"images/j{i}_0.png",
                    "image_sha256": str(i),
                    "scorer": "s",
                    "score": 5.0,
                    "status": "ok",
                }
            ]
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(200)))
    assert read_scores(tmp_path).num_rows == 200
    store.close()
    assert read_scores(tmp_path).num_rows == 200
    assert len(list((tmp_path / "scores").glob("*.parquet"))) == 1
