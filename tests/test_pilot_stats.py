"""The pilot's statistics and sample, without a run: the Wilson interval is a real one (its
coverage measured against a known pass rate), the choice follows its rule, the sample is
seeded and stratified, and --try parses into every combination."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from batchgen.errors import UsageError
from batchgen.jobs.model import Job
from batchgen.pilot.sample import draw, sample_size
from batchgen.pilot.settings import default_ladder, parse_try
from batchgen.pilot.stats import (
    Candidate,
    bootstrap_mean,
    choose,
    per_passing,
    wilson,
    wilson_lower,
    z_two_sided,
)


def test_wilson_matches_the_closed_form_at_the_edges() -> None:
    z = 1.959963984540054
    lo, hi = wilson(24, 24, z)
    assert lo == pytest.approx(24 / (24 + z * z), rel=1e-9)  # n / (n + z²) at p = 1
    assert hi == 1.0
    lo, hi = wilson(0, 24, z)
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(z * z / (24 + z * z), rel=1e-9)
    lo, hi = wilson(12, 24, z)
    assert lo + hi == pytest.approx(1.0)  # symmetric about 1/2
    assert wilson(0, 0, z) == (0.0, 1.0)


@pytest.mark.parametrize("p", [0.5, 0.75, 0.9, 0.97])
def test_wilson_95_interval_covers_a_known_pass_rate(p: float) -> None:
    """Draw 24 images with a known pass rate 3,000 times: the 95% interval holds it in
    about 95% of the draws (Wilson's coverage oscillates a little around nominal at small n;
    the Wald interval at p = 0.97 covers only ~50%)."""
    rng = random.Random(1234)
    z = z_two_sided(0.95)
    n, trials, covered, wald_covered = 24, 3000, 0, 0
    for _ in range(trials):
        k = sum(rng.random() < p for _ in range(n))
        lo, hi = wilson(k, n, z)
        covered += lo <= p <= hi
        half = z * math.sqrt((k / n) * (1 - k / n) / n)
        wald_covered += k / n - half <= p <= k / n + half
    coverage = covered / trials
    assert 0.91 <= coverage <= 0.995, coverage
    if p >= 0.97:
        assert wald_covered / trials < 0.85  # the test can tell a bad interval


def test_one_sided_lower_bound_coverage_is_near_its_confidence_on_average() -> None:
    """The choice reads the one-sided 80% Wilson bound. Its exact coverage at n = 24
    (summed over the binomial, no sampling noise) swings with the true rate — Wilson's known
    oscillation from discreteness, 0.63 to 0.87 over 0.80-0.96 — and averages near 0.8."""
    n = 24

    def coverage(p: float) -> float:
        return sum(
            math.comb(n, k) * p**k * (1 - p) ** (n - k)
            for k in range(n + 1)
            if wilson_lower(k, n, 0.8) <= p
        )

    values = [coverage(0.80 + 0.02 * i) for i in range(9)]
    assert 0.72 <= sum(values) / len(values) <= 0.88
    assert min(values) > 0.6
    # at a rate of exactly 0.9, 23/24 already clears 0.9: P(k <= 22) = 0.708
    assert coverage(0.9) == pytest.approx(1 - 0.9**24 - 24 * 0.9**23 * 0.1, rel=1e-9)


def test_bootstrap_interval_covers_the_mean_of_a_known_distribution() -> None:
    rng = random.Random(5)
    covered = 0
    for i in range(200):
        values = [rng.choice([7.0, 8.0, 9.0]) for _ in range(24)]  # mean 8
        lo, hi = bootstrap_mean(values, rounds=400, seed=i)
        covered += lo <= 8.0 <= hi
    assert covered / 200 >= 0.88
    assert bootstrap_mean([3.0]) == (3.0, 3.0)


def test_choose_the_cheapest_per_passing_image_that_meets_the_target() -> None:
    cands = [
        Candidate("cheap", 24, 18, 0.01),  # 75%: lower bound far below 0.9
        Candidate("mid", 24, 24, 0.04),  # 100%: lower bound 0.936 at 80%
        Candidate("dear", 24, 24, 0.17),
    ]
    c = choose(cands, 0.9, 0.8)
    assert c.chosen == "mid" and c.closest is None
    assert c.lower_bounds["cheap"] < 0.9 <= c.lower_bounds["mid"]
    # 23 of 24 passes at 80% confidence, 22 of 24 does not
    assert wilson_lower(23, 24, 0.8) >= 0.9 > wilson_lower(22, 24, 0.8)
    none = choose([Candidate("a", 24, 20, 0.01), Candidate("b", 24, 22, 0.02)], 0.9, 0.8)
    assert none.chosen is None and none.closest == "b"
    assert "closest: b" in none.reason
    assert per_passing(0.02, 20, 25) == pytest.approx(0.025)
    assert per_passing(0.02, 0, 25) is None


def _jobs(cells: int, per_cell: int) -> list[Job]:
    jobs = []
    for c in range(cells):
        for i in range(per_cell):
            line = c * per_cell + i + 1
            jobs.append(Job.make(f"j{line}", line, {"prompt": f"p{line}"}, vars={"cell": str(c)}))
    return jobs


def test_sample_is_seeded_and_stratified_over_a_specs_variables() -> None:
    jobs = _jobs(4, 10)
    a, b = draw(jobs, 8, seed=7), draw(jobs, 8, seed=7)
    assert [j.id for j in a] == [j.id for j in b]
    assert [j.id for j in draw(jobs, 8, seed=8)] != [j.id for j in a]
    per_cell: dict[str, int] = {}
    for j in a:
        assert j.vars is not None
        per_cell[j.vars["cell"]] = per_cell.get(j.vars["cell"], 0) + 1
    assert per_cell == {"0": 2, "1": 2, "2": 2, "3": 2}
    # unequal cells: every cell at least one, the rest by size
    uneven = _jobs(1, 30) + [
        Job.make(f"x{i}", 100 + i, {"prompt": "x"}, vars={"cell": "x"}) for i in range(2)
    ]
    got = draw(uneven, 6, seed=1)
    assert sum(1 for j in got if j.vars == {"cell": "x"}) == 1
    assert len(got) == 6 and len({j.id for j in got}) == 6
    assert len(draw(jobs, 100, seed=0)) == 40


def test_more_cells_than_places_balances_each_variable() -> None:
    jobs = []
    for i, (a, b, c) in enumerate((a, b, c) for a in range(3) for b in range(4) for c in range(4)):
        vars_ = {"style": str(a), "product": str(b), "background": str(c)}
        jobs.append(Job.make(f"c{i}", i + 1, {"prompt": f"p{i}"}, vars=vars_))
    got = draw(jobs, 24, seed=3)
    assert len({j.id for j in got}) == 24
    for name, values in (("style", 3), ("product", 4), ("background", 4)):  # 8, 6, 6 each
        counts: dict[str, int] = {}
        for j in got:
            assert j.vars is not None
            counts[j.vars[name]] = counts.get(j.vars[name], 0) + 1
        assert len(counts) == values, (name, counts)
        assert max(counts.values()) - min(counts.values()) <= 2, (name, counts)
    assert [j.id for j in draw(jobs, 24, seed=3)] == [j.id for j in got]


def test_sample_size_takes_a_count_or_a_share() -> None:
    assert sample_size("24", 100) == 24
    assert sample_size("24", 10) == 10
    assert sample_size("10%", 300) == 30
    assert sample_size("0.05", 100) == 5
    for bad in ("0", "-3", "abc", "150%"):
        with pytest.raises(UsageError, match="--sample"):
            sample_size(bad, 100)


def test_try_gives_every_combination_and_clear_errors() -> None:
    settings = parse_try(["model=gpt-image-1-mini,gpt-image-1", "quality=low,medium,high"])
    assert len(settings) == 6
    assert settings[0].label == "model=gpt-image-1-mini quality=low"
    assert settings[0].apply({"prompt": "p", "quality": "auto"}) == {
        "prompt": "p",
        "model": "gpt-image-1-mini",
        "quality": "low",
    }
    assert len({s.slug for s in settings}) == 6
    assert parse_try(["n=1,2"])[1].values == {"n": 2}
    for bad, msg in [
        (["quality"], "FIELD=VALUE"),
        (["prompt=a,b"], "not 'prompt'"),
        (["quality=low,low"], "twice"),
        (["n=one"], "whole numbers"),
        (["quality=low", "quality=high"], "given twice"),
    ]:
        with pytest.raises(UsageError, match=msg):
            parse_try(bad)
    assert [s.values["quality"] for s in default_ladder("sim")][:2] == ["low", "medium"]
    with pytest.raises(UsageError, match="--try"):
        default_ladder("gemini")


# ---- usage errors before anything is sent (in process: no request can leave) -------------
def _file(tmp_path, lines: list[dict]) -> Path:  # type: ignore[no-untyped-def]
    import json

    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def test_pilot_usage_errors_name_the_fix_and_send_nothing(tmp_path: Path) -> None:
    from batchgen.pilot.apply import run_apply
    from batchgen.pilot.run import run_pilot
    from batchgen.session.prepare import JobFileProblems

    jobs = _file(
        tmp_path, [{"id": f"a{i}", "prompt": f"p {i}", "size": "1024x1024"} for i in range(6)]
    )
    with pytest.raises(UsageError, match="--judge MODEL"):
        run_pilot(jobs, {"base_url": "http://127.0.0.1:9/v1"}, run_dir=tmp_path / "x")
    # a size the model refuses under one setting: the job file's line and the setting
    wide = _file(tmp_path, [{"id": "w", "prompt": "p", "size": "1792x1024", "model": "dall-e-3"}])
    with pytest.raises(JobFileProblems) as caught:
        run_pilot(
            wide, {"provider": "sim", "try_": ["model=gpt-image-1-mini"]}, run_dir=tmp_path / "w"
        )
    text = str(caught.value)
    assert f"{wide.resolve()}:1: under --try model=gpt-image-1-mini:" in text, text
    assert "1792x1024" in text and not (tmp_path / "w" / "pilot.json").exists()
    assert not (tmp_path / "w" / "run.json").exists()
    with pytest.raises(UsageError, match="not a pilot"):
        run_apply(jobs, tmp_path / "nothing", {"provider": "sim"})
