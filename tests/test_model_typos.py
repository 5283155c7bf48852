"""A model name one keystroke off a priced one ("gpt-image-l" for "gpt-image-1") only got
"Cost unknown" from `plan`, then was sent and failed (400). Names are free-form on aggregators
and local servers, so an unknown name is never refused as such: on OpenAI's own endpoint (and
the built-in simulator, which serves OpenAI's models) a near miss is a FILE:LINE problem before
anything is sent; elsewhere a warning that names the line, and the job goes as written."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from batchgen.cli.main import build_parser, main
from batchgen.jobs.models import model_typos, near_misses
from batchgen.session.builder import serves_openai_models
from batchgen.session.connect import Connection

PRICED = ("dall-e-3", "gpt-image-1", "gpt-image-1-mini", "gpt-image-2", "flux-dev")


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-TYPOS-0000")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def _jobs(tmp_path: Path, model: str) -> Path:
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        '{"prompt": "a", "model": "gpt-image-1-mini"}\n'
        f'{{"prompt": "d", "model": "{model}", "quality": "low"}}\n',
        encoding="utf-8",
    )
    return path


def test_near_misses_of_priced_models_and_only_those() -> None:
    found = near_misses(
        ["gpt-image-l", "gpt-image-3", "gpt-imag-1-mini", "dall-e3", "flux-dev"], PRICED
    )
    assert found == {
        "gpt-image-l": "gpt-image-1",  # a lookalike wins the tie with gpt-image-2
        "gpt-imag-1-mini": "gpt-image-1-mini",
        "dall-e3": "dall-e-3",
    }
    # another version of a priced name may be a model newer than the price table: not refused
    newer = ["gpt-image-3", "dall-e-4", "gpt-image-1.5-mini", "gpt-image-2-2027-01-01"]
    assert near_misses(newer, PRICED) == {}
    # a local server's or an aggregator's own names are no near miss of anything priced
    local = ["sdxl-turbo", "black-forest-labs/FLUX.1-schnell", "my-model", "stable-diffusion-3"]
    assert near_misses(local, PRICED) == {}


def test_openai_and_the_simulator_serve_openai_models_others_do_not() -> None:
    def conn(provider: str, url: str | None) -> Connection:
        return Connection(provider, url, "OPENAI_API_KEY", "k")

    assert serves_openai_models(conn("sim", None))
    assert serves_openai_models(conn("openai", "https://api.openai.com/v1"))
    assert not serves_openai_models(conn("openai", "https://openrouter.ai/api/v1"))
    assert not serves_openai_models(conn("openai", "http://127.0.0.1:8000/v1"))
    assert not serves_openai_models(conn("openai", "https://api.openai.com.example.net/v1"))


def test_a_near_miss_model_is_refused_before_a_sim_run_sends_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = _jobs(tmp_path, "gpt-image-l")
    run_dir = tmp_path / "run"
    code = main(["run", str(jobs), "--provider", "sim", "--run-dir", str(run_dir), "--yes"])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == 2, text
    assert f'{jobs}:2: model "gpt-image-l"' in text and 'did you mean "gpt-image-1"?' in text
    assert not run_dir.exists()  # nothing begun, nothing sent


def test_elsewhere_a_near_miss_model_is_a_warning_naming_the_line_and_is_sent(
    tmp_path: Path, make_sim, capsys: pytest.CaptureFixture[str]
) -> None:
    # a server that does serve the name (an aggregator's alias, a local model)
    sim = make_sim(extra_models=("gpt-image-l",))
    jobs = _jobs(tmp_path, "gpt-image-l")
    argv = ["run", str(jobs), "--base-url", sim.base_url, "--run-dir", str(tmp_path / "r")]
    code = main([*argv, "--yes"])
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).split())
    assert code == 0, text
    assert f'{jobs}:2: model "gpt-image-l"' in text and 'did you mean "gpt-image-1"?' in text
    assert sim.stats.received == 2


def test_plan_warns_of_a_near_miss_model_with_its_line(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, "gpt-image-l")
    args = build_parser().parse_args(["plan", str(jobs)])
    out = io.StringIO()
    args.func(args, stdout=out)
    text = " ".join(out.getvalue().split())
    assert f'{jobs}:2: model "gpt-image-l"' in text and 'did you mean "gpt-image-1"?' in text


def test_a_spec_names_the_job_not_a_line(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text('defaults: {model: gpt-image-l}\nprompt: "a {x}"\nmatrix: {x: [cat, dog]}\n')
    first = near_misses(["gpt-image-l"], PRICED)
    typos = model_typos(spec, None, first, PRICED, refused=True)
    assert [str(t).split(": model")[0] for t in typos] == [f"{spec}: job x=cat (#1)"]
