"""Round three, the Python API: job dicts with values JSON has no form for — float("nan")
(what pandas gives for an empty cell) and a numpy-style number. NaN was written into the run's
jobs.jsonl as ``NaN`` and then refused as "RUN/jobs.jsonl:2: NaN is not valid JSON": a file
and a line the caller never wrote. The error names ``jobs[i][field]`` and the fix, and
nothing is sent (counted at the simulator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import batchgen
from batchgen.errors import ConfigError
from tests.runhelpers import SECRET_KEY

pytestmark = pytest.mark.timeout(120)

KW: dict[str, Any] = {"model": "gpt-image-1", "size": "1024x1024", "quality": "low"}


class NumpyLikeInt:
    """A number type json does not know (numpy.int64 is one; numpy is not a dependency)."""

    def __int__(self) -> int:
        return 3


@pytest.fixture(autouse=True)
def _no_real_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (float("nan"), "Out of range float"),
        (float("inf"), "Out of range float"),
        (NumpyLikeInt(), "not JSON serializable"),
    ],
)
def test_a_job_value_json_cannot_carry_names_the_job_and_field(
    make_sim: Any, tmp_path: Path, value: Any, says: str
) -> None:
    sim = make_sim(api_key=SECRET_KEY)
    jobs = [{"prompt": "a red fox"}, {"prompt": "a blue fox", "seed": value}]
    with pytest.raises(ConfigError) as caught:
        batchgen.run(
            jobs, run_dir=tmp_path / "run", base_url=sim.base_url, api_key=SECRET_KEY, **KW
        )
    text = str(caught.value)
    assert "jobs[1]['seed']" in text and says in text and "plain values" in text, text
    assert "jobs.jsonl" not in text
    assert sim.stats.received == 0
    assert not (tmp_path / "run" / "run.json").exists()
