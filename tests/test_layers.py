"""The layout holds: imports between batchgen's packages run one way, down the layers drawn in
docs/ARCHITECTURE.md. Read from the source (every import, also those inside functions and
under TYPE_CHECKING), so a new import that closes a loop fails here, not in review."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "batchgen"

# top to bottom: a unit imports only units of the rows below its own
LAYERS: list[set[str]] = [
    {"__main__"},
    {"cli"},
    {"__init__"},
    {"api"},
    {"apiargs"},
    {"pilot"},
    {
        "doctor",
        "export",
        "notify",
        "metadata",
    },  # around a batch (before it, after it, when it ends)
    # --ray: shards of a run, each a session (so above session), started by the fronts
    {"cluster"},
    {"session"},
    {"reports"},
    {"analyze"},
    {"library"},
    {"quality", "batch", "checks"},
    {"runner"},
    {"money"},
    {"runlog"},
    {"provider"},
    {"limits"},
    {"jobs"},
    # where images go (the local folder or any fsspec filesystem): it wraps images' atomic
    # writes, so it sits right above them; the pool (runner), recovery and the reports use it
    {"storage"},
    {"images"},
    {"config"},
    # the simulator's settings: RunConfig carries them typed from the flag to the simulator,
    # so they sit below config (SimConfig over the table of its options); stdlib and errors
    {"simconfig"},
    {"simoptions"},
    {"errors"},
    {"redaction", "clock", "faultpoints", "numbers"},
]
# they stand aside: the simulator (started by a session for --provider sim, and the
# simulated judge of the quality loop) and the test support; nothing below imports them
ASIDE = {"sim", "testing"}
ALLOWED_ASIDE = {("session", "sim"), ("quality", "sim"), ("cli", "sim")}


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> files that import it."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in PACKAGE.rglob("*.py"):
        src = _unit(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
                if node.module == "batchgen":
                    names = [f"batchgen.{a.name}" for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] != "batchgen" or len(parts) < 2 or parts[1] == "__version__":
                    continue
                if parts[1] != src:
                    edges[src][parts[1]].add(str(path.relative_to(PACKAGE.parent)))
    return edges


def _layer(unit: str) -> int:
    for i, layer in enumerate(LAYERS):
        if unit in layer:
            return i
    raise AssertionError(f"{unit}: not in a layer of tests/test_layers.py; place it")


def test_every_unit_has_a_layer() -> None:
    units = {_unit(p) for p in PACKAGE.rglob("*.py")}
    for unit in units - ASIDE:
        _layer(unit)


def test_no_package_imports_one_that_imports_it_back() -> None:
    edges = _imports()
    pairs = sorted(
        (a, b, sorted(edges[a][b]), sorted(edges[b][a]))
        for a in edges
        for b in edges[a]
        if a < b and a in edges.get(b, {})
    )
    assert pairs == []


def test_imports_run_down_the_layers() -> None:
    upward = []
    for src, targets in _imports().items():
        for dst, files in targets.items():
            if src in ASIDE:
                continue
            if dst in ASIDE:
                if (src, dst) not in ALLOWED_ASIDE:
                    upward.append(f"{src} -> {dst} ({', '.join(sorted(files))})")
                continue
            if _layer(dst) < _layer(src) or (_layer(dst) == _layer(src) and src != dst):
                upward.append(f"{src} -> {dst} ({', '.join(sorted(files))})")
    assert upward == []


def test_the_check_sees_a_loop() -> None:
    """The reader finds imports inside functions too (where a loop would hide)."""
    edges = _imports()
    assert "runner" in edges["session"]  # a module-level import
    assert "reports" in edges["api"]  # inside report(), and under TYPE_CHECKING
