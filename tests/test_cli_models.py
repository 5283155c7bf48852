"""`batchgen models`: the price table as people read it (text) and scripts do (JSON), from the
same lookups the quote uses; an unknown model is refused with the known ones named."""

from __future__ import annotations

import contextlib
import io
import json

from batchgen.cli.main import main
from batchgen.money.cost import image_usd
from batchgen.money.load import load_prices


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["models", *argv])
    return code, out.getvalue(), err.getvalue()


def test_models_json_matches_the_quote_lookups() -> None:
    code, out, _ = _run("--format", "json")
    assert code == 0
    rows = {r["model"]: r for r in json.loads(out)}
    prices = load_prices()
    assert set(rows) == set(prices.models)
    assert rows["dall-e-3"]["usd_per_image"]["hd"]["1024x1024"] == 0.08
    mini = rows["gpt-image-1-mini"]
    assert mini["batch_rate"] == 0.5
    expected = image_usd(prices, "gpt-image-1-mini", "low", "1024x1024")
    assert expected is not None
    assert abs(mini["usd_per_image"]["low"]["1024x1024"] - expected) < 1e-6
    assert rows["gpt-4o-mini"]["chat_usd_per_1m"]["input"] > 0


def test_models_text_and_an_unknown_model() -> None:
    code, out, _ = _run("dall-e-3")
    assert code == 0
    assert "dall-e-3" in out and "hd" in out and "$0.0800" in out and "gpt-image-1" not in out
    code, _, err = _run("dall-e-4")
    assert code == 2
    assert "'dall-e-4' is not in the price table" in err and "dall-e-3" in err
