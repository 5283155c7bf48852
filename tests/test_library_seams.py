"""The library code under the thin CLI commands, called directly as a Python caller would:
a plan of a job file, the endpoints file, and the simulator's one-way imports."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from batchgen.money import load_prices
from batchgen.money.plan import plan_file
from batchgen.provider.endpoints import (
    LOCAL_KEY,
    EndpointError,
    EndpointSpec,
    load_providers,
    resolve_keys,
)


def _jobs(tmp_path: Path, *bodies: dict[str, object]) -> Path:
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies), encoding="utf-8")
    return path


def test_plan_file_quotes_a_spec_and_tallies_its_variables(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "defaults: {model: gpt-image-1, quality: low, size: 1024x1024}\n"
        'prompt: "a {animal} on {ground}"\n'
        "matrix: {animal: [cat, dog], ground: [grass, sand, snow]}\n",
        encoding="utf-8",
    )
    plan = plan_file(path, load_prices(), rpm=5, via="batch")
    assert plan.ok and plan.refused is None and plan.check is not None
    quote, batch = plan.check.quote, plan.check.batch_quote
    assert quote is not None and quote.jobs == 6 and quote.images == 6
    assert batch is not None and batch.expected_usd < quote.expected_usd  # the Batch API's half
    variables = plan.tally.to_dict()["variables"]
    assert variables["animal"] == {"cat": {"jobs": 3, "images": 3}, "dog": {"jobs": 3, "images": 3}}
    assert variables["ground"]["snow"] == {"jobs": 2, "images": 2}


def test_plan_file_counts_model_problems_and_drops_the_quote_on_shape_problems(
    tmp_path: Path,
) -> None:
    prices = load_prices()
    bad_model = _jobs(tmp_path, {"prompt": "two", "model": "dall-e-3", "n": 2})
    plan = plan_file(bad_model, prices)
    assert not plan.ok and plan.check is not None
    assert plan.check.model_problem_count == 1 and plan.check.quote is not None
    assert plan.check.model_problems[0].line == 1
    (tmp_path / "broken.jsonl").write_text('{"prompt": "ok"}\nnot json\n', encoding="utf-8")
    plan = plan_file(tmp_path / "broken.jsonl", prices)
    assert plan.check is not None and plan.check.quote is None and not plan.ok
    assert plan.check.validation.problem_count == 1 and plan.tally.to_dict()["variables"] == {}


def test_plan_file_refuses_more_than_max_jobs(tmp_path: Path) -> None:
    path = _jobs(tmp_path, *({"prompt": f"p{i}", "model": "gpt-image-1"} for i in range(3)))
    plan = plan_file(path, load_prices(), max_jobs=2)
    assert not plan.ok and plan.refused is not None and "more than --max-jobs 2" in plan.refused


def test_an_endpoints_file_problem_is_an_endpoint_error_that_never_echoes_a_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        '[[endpoint]]\nname = "a"\nkey_env = "sk-live-abcdef123456789"\nmodels = ["m"]\n',
        encoding="utf-8",
    )
    with pytest.raises(EndpointError) as caught:
        load_providers(path)
    assert "key_env" in str(caught.value) and "abcdef123456789" not in str(caught.value)


def test_resolve_keys_reads_the_given_environment_and_lets_loopback_go_without() -> None:
    local = EndpointSpec("local", "openai", "http://127.0.0.1:9/v1", "NO_KEY_HERE", ("m",))
    remote = EndpointSpec("remote", "openai", "https://api.example.com/v1", "K_REMOTE", ("m",))
    assert resolve_keys([local, remote], {"K_REMOTE": "sk-x"}) == {
        "local": LOCAL_KEY,
        "remote": "sk-x",
    }
    with pytest.raises(EndpointError, match=r"\$K_REMOTE is not set"):
        resolve_keys([remote], {})


def _sim_imports() -> dict[str, set[str]]:
    """Module -> the sim modules it imports anywhere in its file (type-only imports too)."""
    folder = Path(__file__).resolve().parents[1] / "batchgen" / "sim"
    names = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    graph: dict[str, set[str]] = {}
    for name in names:
        found: set[str] = set()
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "batchgen.sim":
                found.update(a.name for a in node.names if a.name in names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "batchgen.sim."
            ):
                found.add((node.module or "").rsplit(".", 1)[1])
        graph[name] = found - {name}
    return graph


def test_the_simulators_modules_import_one_way() -> None:
    """No sim module imports one that imports it back (server → chat, protocols, batches →
    front), type-only imports included."""
    graph = _sim_imports()
    assert {"chat", "protocols", "batches", "front"} <= graph["server"]
    assert "front" in graph["chat"] and "front" in graph["protocols"]

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(m for m in graph if reaches(m, m, {m}))
    assert cycles == [], f"import cycles through {cycles}"
