"""Prices as data, cost per attempt, model constraints and the quote."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from batchgen.cli.quote import format_quote
from batchgen.jobs.model import Job
from batchgen.money import (
    PricesError,
    check_job,
    cost_of_attempt,
    estimate_job,
    load_prices,
    quote,
    quote_to_dict,
    worst_case_usd,
)
from batchgen.money.memo import MEMO_LIMIT, remember
from batchgen.money.quote import min_wall_time
from batchgen.provider.base import Usage


@pytest.fixture(scope="module")
def prices():
    return load_prices()


def job(body: dict, line: int = 1) -> Job:
    return Job.make(f"j{line}", line, {"prompt": "a red fox in the snow", **body})


def write(tmp_path: Path, text: str, name: str = "my-prices.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ the shipped table


def test_shipped_table_has_the_documented_figures(prices):
    g1 = prices.get("gpt-image-1")
    assert (g1.text_input_per_1m, g1.image_input_per_1m, g1.image_output_per_1m) == (5, 10, 40)
    mini = prices.get("gpt-image-1-mini")
    assert (mini.text_input_per_1m, mini.image_input_per_1m, mini.image_output_per_1m) == (
        2,
        2.5,
        8,
    )
    assert g1.image_output_tokens("high", "1024x1536") == 6240
    assert g1.image_output_tokens("low", "1536x1024") == 400
    assert prices.get("dall-e-3").image_price("hd", "1792x1024") == 0.12
    assert prices.get("dall-e-2").image_price("standard", "512x512") == 0.018
    assert prices.get("sora_image").image_price("auto", "1024x1024") == 0.01
    assert prices.get("flux-kontext-pro").image_price("auto", "1536x1024") == 0.035
    for entry in prices.models.values():
        assert entry.source and entry.as_of, entry.name


# ------------------------------------------------------------------ cost of an attempt


@pytest.mark.parametrize(
    ("quality", "size", "n", "expected"),
    [
        # 21-char prompt → ceil(21/4) = 6 text tokens at $5/M = $0.00003
        ("low", "1024x1024", 1, 6 * 5e-6 + 272 * 40e-6),  # 0.01091
        ("medium", "1024x1536", 1, 6 * 5e-6 + 1584 * 40e-6),  # 0.06339
        ("high", "1536x1024", 3, 6 * 5e-6 + 3 * 6208 * 40e-6),  # 0.74499
        ("auto", "auto", 1, 6 * 5e-6 + 1056 * 40e-6),  # auto → medium, square
        (None, None, 2, 6 * 5e-6 + 2 * 1056 * 40e-6),
    ],
)
def test_gpt_image_1_cost_from_the_table(prices, quality, size, n, expected):
    body = {"model": "gpt-image-1", "quality": quality, "size": size, "n": n}
    usd, source = cost_of_attempt(prices, job(body), None, n)
    assert source == "price-table"
    assert usd == pytest.approx(expected, rel=1e-12)


def test_gpt_image_1_high_square_by_hand(prices):
    usd, _ = cost_of_attempt(
        prices, job({"model": "gpt-image-1", "quality": "high", "size": "1024x1024"}), None, 1
    )
    assert round(usd, 5) == 0.16643  # 4160 × $40/M + 6 × $5/M


def test_cost_from_usage_beats_the_table(prices):
    usage = Usage(
        input_tokens=120, input_text_tokens=100, input_image_tokens=20, output_tokens=5000
    )
    body = {"model": "gpt-image-1", "quality": "low", "size": "1024x1024"}
    usd, source = cost_of_attempt(prices, job(body), usage, 1)
    assert source == "usage"
    assert usd == pytest.approx(
        100 * 5e-6 + 20 * 10e-6 + 5000 * 40e-6
    )  # 0.2007, not the low figure


def test_usage_without_breakdown_is_text_input(prices):
    usage = Usage(input_tokens=40, output_tokens=1056)
    usd, _ = cost_of_attempt(prices, job({"model": "gpt-image-1-mini"}), usage, 1)
    assert usd == pytest.approx(40 * 2e-6 + 1056 * 8e-6)


def test_gpt_image_1_mini_from_the_table(prices):
    body = {"model": "gpt-image-1-mini", "quality": "high", "size": "1024x1536", "n": 2}
    usd, _ = cost_of_attempt(prices, job(body), None, 2)
    assert usd == pytest.approx(6 * 2e-6 + 2 * 6240 * 8e-6)  # 0.099852


def test_images_returned_not_n_is_billed(prices):
    body = {"model": "dall-e-2", "size": "256x256", "n": 4}
    usd, _ = cost_of_attempt(prices, job(body), None, 3)
    assert usd == pytest.approx(3 * 0.016)


@pytest.mark.parametrize(
    ("quality", "size", "expected"),
    [
        ("standard", "1024x1024", 0.04),
        ("standard", "1792x1024", 0.08),
        ("hd", "1024x1024", 0.08),
        ("hd", "1024x1792", 0.12),
        (None, None, 0.04),  # dall-e-3's defaults: standard, 1024x1024
    ],
)
def test_dalle3_per_image(prices, quality, size, expected):
    usd, source = cost_of_attempt(
        prices, job({"model": "dall-e-3", "quality": quality, "size": size}), None, 1
    )
    assert (usd, source) == (pytest.approx(expected), "price-table")


def test_failed_attempt_costs_nothing(prices):
    assert cost_of_attempt(prices, job({"model": "gpt-image-1"}), None, 0) == (0.0, "none")
    assert cost_of_attempt(prices, job({"model": "no-such-model"}), None, 0) == (0.0, "none")


def test_unknown_model_has_unknown_cost_unless_a_fallback_is_given(prices):
    assert cost_of_attempt(prices, job({"model": "midjourney-9"}), None, 2) == (None, "unknown")
    fallback = load_prices(fallback_per_image=0.05)
    usd, source = cost_of_attempt(fallback, job({"model": "midjourney-9"}), None, 2)
    assert (usd, source) == (pytest.approx(0.10), "price-table")


def test_gpt_image_2_custom_size_scales_by_area(prices):
    body = {"model": "gpt-image-2", "quality": "medium", "size": "2048x1152"}
    usd, _ = cost_of_attempt(prices, job(body), None, 1)
    tokens = round(1056 * 2048 * 1152 / 1024**2)  # 2376
    assert usd == pytest.approx(6 * 5e-6 + tokens * 30e-6)


# ------------------------------------------------------------------ overrides and malformed files


def test_override_replaces_keys_and_adds_models(tmp_path):
    path = write(
        tmp_path,
        """
[models."gpt-image-1"]
image_output_per_1m = 20.0
source = "negotiated rate"
as_of = 2026-01-15

[models."my-proxy-model"]
billing = "per_image"
per_image = { standard = 0.5, hd = { "1024x1024" = 1.0, "*" = 2.0 } }
source = "our proxy"
as_of = "2026-02-01"
""",
    )
    table = load_prices(path)
    g1 = table.get("gpt-image-1")
    assert g1.image_output_per_1m == 20.0
    assert g1.text_input_per_1m == 5.0  # untouched keys keep the shipped figure
    assert g1.as_of == "2026-01-15"
    assert g1.constraints is not None and g1.constraints.n_max == 10
    mine = table.get("my-proxy-model")
    assert mine.image_price("hd", "512x512") == 2.0
    assert mine.image_price("standard", "1024x1024") == 0.5
    assert table.get("dall-e-3").image_price("standard", "1024x1024") == 0.04
    assert table.files[-1] == str(path)


def test_override_changing_billing_replaces_the_entry(tmp_path):
    path = write(
        tmp_path,
        """
[models."gpt-image-1"]
billing = "per_image"
per_image = 0.03
source = "aggregator flat rate"
as_of = "2026-01-01"
""",
    )
    entry = load_prices(path).get("gpt-image-1")
    assert entry.billing == "per_image" and entry.constraints is None
    usd, _ = cost_of_attempt(load_prices(path), job({"model": "gpt-image-1", "n": 2}), None, 2)
    assert usd == pytest.approx(0.06)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            '[models."gpt-image-1"]\nimage_output_per_1m = "forty"\n',
            [
                'my-prices.toml: models."gpt-image-1".image_output_per_1m must be a number ≥ 0',
                "'forty'",
            ],
        ),
        (
            '[models."gpt-image-1"]\ntext_input_per_1m = -1\n',
            ['models."gpt-image-1".text_input_per_1m must be a number ≥ 0', "got -1"],
        ),
        (
            '[models."x"]\nbilling = "per_token"\nsource = "s"\nas_of = "d"\n',
            ['models."x".billing must be "tokens", "per_image" or "chat"', "'per_token'"],
        ),
        (
            '[models."x"]\nbilling = "tokens"\ntext_input_per_1m = 1\nimage_input_per_1m = 1\n'
            'output_tokens = "gpt-image-1"\nsource = "s"\nas_of = "d"\n',
            ['models."x".image_output_per_1m is missing'],
        ),
        (
            '[models."x"]\nbilling = "per_image"\nper_image = 0.1\n',
            ['models."x".source must say where the price comes from', 'models."x".as_of must be'],
        ),
        (
            '[models."gpt-image-1"]\nimage_ouput_per_1m = 3\n',
            [
                "image_ouput_per_1m is not a key of a tokens model",
                "did you mean 'image_output_per_1m'",
            ],
        ),
        (
            '[models."x"]\nbilling = "per_image"\nper_image = { hd = { "huge" = 1 } }\n'
            'source = "s"\nas_of = "d"\n',
            ['models."x".per_image.hd."huge" is not a size'],
        ),
        (
            '[models."gpt-image-1"]\noutput_tokens = "nope"\n',
            ['models."gpt-image-1".output_tokens names no table', "'nope'"],
        ),
        (
            '[constraints."gpt-image"]\nn_max = 0\n',
            ['constraints."gpt-image".n_max must be a whole number ≥ 1', "got 0"],
        ),
        ('[model."x"]\n', ["unknown section [model]", "did you mean 'models'"]),
        ('[models."x"\nbilling = 1\n', ["my-prices.toml: not valid TOML", "line 1"]),
    ],
)
def test_malformed_files_name_file_key_and_fix(tmp_path, text, needles):
    path = write(tmp_path, text)
    with pytest.raises(PricesError) as info:
        load_prices(path)
    message = str(info.value)
    for needle in needles:
        assert needle in message, message


def test_all_problems_are_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        '[models."gpt-image-1"]\nimage_output_per_1m = "forty"\ntext_input_per_1m = true\n',
    )
    with pytest.raises(PricesError, match=r"2 problem\(s\)") as info:
        load_prices(path)
    assert "text_input_per_1m" in str(info.value) and "image_output_per_1m" in str(info.value)


def test_missing_price_file_says_which(tmp_path):
    with pytest.raises(PricesError, match=r"nope\.toml: cannot read the price file"):
        load_prices(tmp_path / "nope.toml")


def test_bad_fallback_price_is_refused():
    with pytest.raises(PricesError, match="--price-per-image must be a number"):
        load_prices(fallback_per_image=math.nan)


# ------------------------------------------------------------------ model constraints


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "dall-e-3", "n": 2}, "dall-e-3 takes only n=1"),
        ({"model": "gpt-image-1", "n": 11}, "outside 1–10"),
        (
            {"model": "gpt-image-1", "size": "1792x1024"},
            'size "1792x1024" is not accepted by gpt-image-1',
        ),
        ({"model": "dall-e-3", "size": "auto"}, 'size "auto" is not accepted by dall-e-3'),
        ({"model": "dall-e-2", "size": "2048x2048"}, "use one of 256x256, 512x512, 1024x1024"),
        ({"model": "gpt-image-2", "size": "1000x1000"}, "multiples of 16"),
        ({"model": "gpt-image-2", "size": "3840x3840"}, "short side at most 2160"),
        ({"model": "gpt-image-2", "size": "3200x1024"}, "within 3:1"),
        ({"model": "gpt-image-1", "quality": "hd"}, 'quality "hd" is not accepted by gpt-image-1'),
        ({"model": "dall-e-3", "quality": "high"}, "use one of standard, hd"),
        ({"model": "gpt-image-1", "style": "vivid"}, 'gpt-image-1 does not take "style"'),
        ({"model": "gpt-image-1", "response_format": "url"}, '"response_format"'),
        ({"model": "dall-e-3", "background": "transparent"}, 'dall-e-3 does not take "background"'),
        ({"model": "dall-e-2", "output_format": "webp"}, '"output_format"'),
        ({}, 'no "model"'),
    ],
)
def test_check_job_finds(prices, body, needle):
    problems = check_job(prices, job(body))
    assert any(needle in p for p in problems), problems


@pytest.mark.parametrize(
    "body",
    [
        {
            "model": "gpt-image-1",
            "n": 10,
            "size": "1536x1024",
            "quality": "auto",
            "output_format": "webp",
        },
        {"model": "gpt-image-2", "size": "2048x1152"},
        {"model": "gpt-image-2", "size": "2160x3840"},
        {"model": "dall-e-3", "size": "1024x1792", "quality": "hd", "style": "natural"},
        {"model": "dall-e-2", "size": "256x256", "n": 10, "response_format": "b64_json"},
        {"model": "flux-kontext-pro", "size": "999x777"},  # no constraints recorded
        {"model": "unknown-model", "n": 3},
    ],
)
def test_check_job_accepts(prices, body):
    assert check_job(prices, job(body)) == []


def test_prompt_limits(prices):
    assert check_job(prices, Job.make("a", 1, {"prompt": "x" * 1000, "model": "dall-e-2"})) == []
    [problem] = check_job(prices, Job.make("a", 1, {"prompt": "x" * 1001, "model": "dall-e-2"}))
    assert "1,001 characters; dall-e-2 takes at most 1,000" in problem
    assert check_job(prices, Job.make("a", 1, {"prompt": "x" * 4001, "model": "dall-e-3"}))
    assert (
        check_job(prices, Job.make("a", 1, {"prompt": "x" * 32000, "model": "gpt-image-1"})) == []
    )
    assert check_job(prices, Job.make("a", 1, {"prompt": "x" * 32001, "model": "gpt-image-1"}))


# ------------------------------------------------------------------ estimates and the quote


def test_estimate_is_exact_when_quality_and_size_are_known(prices):
    e = estimate_job(prices, job({"model": "gpt-image-1", "quality": "high", "size": "1024x1024"}))
    assert e.exact and e.expected == pytest.approx(6 * 5e-6 + 4160 * 40e-6)


def test_estimate_range_for_auto_quality_and_size(prices):
    e = estimate_job(prices, job({"model": "gpt-image-1"}))
    text = 6 * 5e-6
    assert e.low == pytest.approx(text + 272 * 40e-6)
    assert e.expected == pytest.approx(text + 1056 * 40e-6)
    assert e.high == pytest.approx(text + 6240 * 40e-6)


def test_estimate_range_for_auto_quality_only(prices):
    e = estimate_job(
        prices, job({"model": "dall-e-3", "size": "1792x1024", "quality": "auto", "n": 1})
    )
    assert (e.low, e.expected, e.high) == (
        pytest.approx(0.08),
        pytest.approx(0.08),
        pytest.approx(0.12),
    )


def test_worst_case_bounds_every_possible_bill(prices):
    prompt = "日本の雪の中の赤い狐" * 10  # 100 characters, 300 UTF-8 bytes
    j = Job.make("a", 1, {"prompt": prompt, "model": "gpt-image-1", "n": 3})
    assert worst_case_usd(prices, j) == pytest.approx(300 * 5e-6 + 3 * 6240 * 40e-6)
    # dall-e-3 has no automatic size: missing means its default 1024x1024; quality may be hd
    assert worst_case_usd(prices, job({"model": "dall-e-3"})) == pytest.approx(0.08)
    assert worst_case_usd(prices, job({"model": "dall-e-3", "size": "1792x1024"})) == pytest.approx(
        0.12
    )
    assert worst_case_usd(prices, job({"model": "no-such"})) is None


def test_quote_groups_and_totals(prices):
    jobs = [
        job({"model": "gpt-image-1", "quality": "low", "size": "1024x1024"}, 1),
        job({"model": "gpt-image-1", "quality": "low", "size": "1024x1024", "n": 2}, 2),
        job({"model": "dall-e-3", "quality": "hd", "size": "1024x1024"}, 3),
        job({"model": "gpt-image-1"}, 4),
        job({"model": "mystery"}, 5),
    ]
    q = quote(iter(jobs), prices)
    assert (q.jobs, q.images) == (5, 6)
    by_key = {(line.model, line.quality, line.size): line for line in q.lines}
    low_line = by_key[("gpt-image-1", "low", "1024x1024")]
    assert (low_line.jobs, low_line.images) == (2, 3)
    assert low_line.expected_usd == pytest.approx(2 * 6 * 5e-6 + 3 * 272 * 40e-6)
    assert not low_line.is_range
    auto_line = by_key[("gpt-image-1", "auto", "auto")]
    assert auto_line.is_range and "medium" in auto_line.assumption
    assert q.unknown_models == ("mystery",) and not q.complete
    assert by_key[("mystery", "auto", "auto")].expected_usd is None
    assert q.expected_usd == pytest.approx(low_line.expected_usd + 0.08 + auto_line.expected_usd)
    assert q.low_usd < q.expected_usd < q.high_usd
    text = format_quote(q)
    assert "mystery" in text and "not in the total" in text and "total" in text
    assert quote_to_dict(q)["lines"][0]["is_range"] in (True, False)


def test_min_wall_time_takes_the_binding_limit():
    # 600 jobs of 1 image at 60 rpm: the last starts at 599 s, then 15 s of latency
    wall = min_wall_time(600, 600, 600 * 15.0, rpm=60, ipm=None, concurrency=100)
    assert (wall.bound, wall.seconds) == ("rpm", pytest.approx(614.0))
    # 4 images per request: 2400 images at 120 ipm dominate
    wall = min_wall_time(600, 2400, 600 * 15.0, rpm=60, ipm=120, concurrency=100)
    assert (wall.bound, wall.seconds) == ("ipm", pytest.approx(2399 * 0.5 + 15))
    # no rate limit: 8 slots of 15 s requests
    wall = min_wall_time(80, 80, 80 * 15.0, rpm=None, ipm=None, concurrency=8)
    assert (wall.bound, wall.seconds) == ("concurrency", pytest.approx(150.0))
    assert min_wall_time(0, 0, 0.0, rpm=1, ipm=1, concurrency=1).seconds == 0


def test_quote_uses_the_table_latency_unless_told(prices):
    jobs = [job({"model": "gpt-image-1"}, i) for i in range(1, 9)]
    assert quote(iter(jobs), prices, concurrency=4).wall.seconds == pytest.approx(30.0)
    told = quote(iter(jobs), prices, concurrency=4, assume_latency=5.0)
    assert told.wall.seconds == pytest.approx(10.0)


def test_image_usd_resolves_auto_like_the_quote(prices):
    from batchgen.money import image_usd

    assert image_usd(prices, "gpt-image-1", "auto", "auto") == pytest.approx(1056 * 40e-6)
    assert image_usd(prices, "gpt-image-1", "high", "1024x1536") == pytest.approx(6240 * 40e-6)
    assert image_usd(prices, "dall-e-3", None, None) == pytest.approx(0.04)
    assert image_usd(prices, "nope", "auto", "auto") is None


def test_check_job_remembers_a_setting_but_not_across_its_types_or_prompts(prices):
    # the checks of n, size and quality are kept per model × n × size × quality: a repeat
    # gives the same messages, n=True (== 1) is still refused after n=1 passed, and the
    # prompt and the refused parameters are still checked for each job
    ok = {"model": "dall-e-3", "n": 1, "size": "1024x1024"}
    assert check_job(prices, job(ok)) == check_job(prices, job(ok)) == []
    [bad_n] = check_job(prices, job({**ok, "n": True}))
    assert '"n" must be a whole number' in bad_n
    [long] = check_job(prices, Job.make("a", 1, {"prompt": "x" * 4001, **ok}))
    assert "4,001 characters" in long
    [style] = check_job(prices, job({**ok, "background": "transparent"}))
    assert 'does not take "background"' in style
    two = check_job(prices, job({**ok, "size": "99x99", "quality": "best"}))
    assert two == check_job(prices, job({**ok, "size": "99x99", "quality": "best"}))
    assert len(two) == 2 and "99x99" in two[0] and "best" in two[1]


def test_a_full_memo_is_emptied_and_the_checks_and_costs_stay_right(prices):
    # the memos of check_job and the cost lookups hold MEMO_LIMIT settings, then start again:
    # a setting checked before the memo was emptied is checked and priced again, the same
    memo: dict[int, int] = {}
    for i in range(MEMO_LIMIT):
        assert remember(memo, i, i * 2) == i * 2
    assert len(memo) == MEMO_LIMIT
    assert remember(memo, -1, 7) == 7 and memo == {-1: 7}
    first = job({"model": "dall-e-3", "size": "99x99"})
    problems, estimate = check_job(prices, first), estimate_job(prices, first)
    assert problems and "99x99" in problems[0] and estimate is not None
    for i in range(MEMO_LIMIT + 1):  # more settings than a memo holds: each is emptied once
        other = job({"model": "dall-e-3", "size": f"{i}x7"})
        assert f"{i}x7" in check_job(prices, other)[0]
        assert estimate_job(prices, other) == estimate
    assert check_job(prices, first) == problems and estimate_job(prices, first) == estimate
