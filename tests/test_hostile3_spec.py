"""Round three, YAML specs: values JSON has no form for. A YAML 1.1 date (``user:
2024-01-01``) and ``!!binary`` / ``!!set`` crashed the job scan with a TypeError traceback
(``plan`` and ``run`` alike); ``.nan``, ``.inf`` and ``1.0e+400`` were sent as ``null``
without a word. Now a date is the text written, and the rest are FILE:LINE problems that say
what to write instead, before anything is sent."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from batchgen.jobs import iter_jobs
from batchgen.jobs.spec import SpecProblems, load_spec
from tests.runhelpers import cli_env, run_cli

HEAD = "prompt: a mug on a table\ndefaults:\n  model: gpt-image-1\n"


def test_a_yaml_date_is_sent_as_the_text_written(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "prompt: 'a mug on {day}'\n"
        "defaults:\n  model: gpt-image-1\n  user: 2024-01-01\n"
        "matrix:\n  day: [2024-01-01, 2001-12-14t21:59:43.10-05:00]\n"
    )
    jobs = list(iter_jobs(path))
    bodies = [orjson.loads(orjson.dumps(j.body)) for j in jobs]
    assert [b["user"] for b in bodies] == ["2024-01-01", "2024-01-01"]
    assert [b["prompt"] for b in bodies] == [
        "a mug on 2024-01-01",
        "a mug on 2001-12-14t21:59:43.10-05:00",
    ]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (".nan", ".nan is not a finite number"),
        ("-.inf", "-.inf is not a finite number"),
        ("1.0e+400", "1.0e+400 is not a finite number"),
        ("!!binary aGVsbG8=", "!!binary is bytes"),
        ("!!set {a, b}", "!!set has no JSON form"),
    ],
)
def test_a_value_json_cannot_carry_is_a_problem_at_its_line(
    tmp_path: Path, value: str, words: str
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + "  size: 1024x1024\n" + f"  seed: {value}\n")
    with pytest.raises(SpecProblems) as caught:
        load_spec(path)
    text = str(caught.value)
    assert f"{path}:5: " in text and words in text, text
    assert "write" in text  # what to write instead


def test_plan_names_the_line_instead_of_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + "  metadata: !!binary aGVsbG8=\n")
    done = run_cli(["plan", str(path)], env=cli_env())
    assert done.code == 2, done.output
    assert "Traceback" not in done.output and f"{path}:4: " in done.output, done.output
