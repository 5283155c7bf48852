"""No import circles inside batchgen, and imports inside functions only where start-up needs them.

The graph is read from the source with ``ast``: every ``import`` and ``from … import`` of a
batchgen module, at module level, inside functions and under ``TYPE_CHECKING`` alike, resolved
to the module it loads (``from batchgen.session import execute`` is the module
``batchgen.session.execute``; ``from batchgen.money import Budget`` is ``batchgen.money``'s
``__init__``). An import inside a function hides a circle from Python at import time but not
from the reader: here it counts like any other.

An import inside a function (a *lazy* import; a call of ``importlib.import_module`` or
``__import__`` there counts as one, whatever it is given) is kept only when start-up time
needs it, with a ``# lazy:`` comment giving the reason on its line or the lines above; the
count is held to a ceiling so that new ones are a decision, not a habit. Run
``python tests/test_import_graph.py`` to print the counts and any circle.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "batchgen"

# imports inside functions (statements, and importlib.import_module calls), each with a
# `# lazy:` reason; lower it when you remove one. 52 (95 before, counting no calls): an import
# is deferred only where a lighter path reaches its module without needing it, by group:
#   optional extras 13: ray 3 (with the cluster's code), PyYAML 1, fsspec/s3fs/botocore 5,
#     torch/transformers 2, apprise 1, boto3 (the test S3 server) 1
#   pandas/pyarrow.compute/pyarrow.dataset off `run --quiet` and the parser 17: the run's
#     observer, summary and notify message, the ledger's log sync, the log writer's odd
#     timestamps, --reuse/--regenerate-below, --library, the Batch API's session and resume,
#     the rest of a run a budget stopped (priced as resume would select it, in one place:
#     session/record.py's budget_stop, for what the session records and sends and for the
#     CLI's ending)
#   Pillow/numpy 7: image edits, WebP metadata, CLIP, thumbnails, the image checks' worker
#   the remote store off a local run 5
#   the Python API 3: report() without the session, run()/resume() without the report
#   the simulator off a real endpoint's run 2; platformdirs off the parser 1
#   matplotlib off a report that draws no chart (terminal, JSON, Markdown) 1
#   rich.progress and rich.table (with fractions) off a run without a terminal or with
#     --quiet 2: the live bar, the quote's table
#   by name 4: `import batchgen`'s and batchgen.sim's PEP 562 __getattr__, a command's body
#     (cli/body.Body), the image checks' worker running the function a task names
LAZY_CEILING = 55

# circles known and owned elsewhere, each with where it is being undone; the test fails when
# one is gone (take it off the list) as when a new one comes
KNOWN_CIRCLES: set[tuple[str, ...]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(
    node: ast.AST, in_function: bool = False, typing_only: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    """Every import under ``node``: (node, inside a function, under TYPE_CHECKING)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function, typing_only
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, True, typing_only)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), in_function, True)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), in_function, typing_only)
        else:
            yield from _walk(child, in_function, typing_only)


def _is_dynamic_import(node: ast.AST) -> bool:
    """``importlib.import_module(...)``, ``import_module(...)`` or ``__import__(...)``: an
    import all the same, whatever the name it is given."""
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Attribute) and f.attr == "import_module") or (
        isinstance(f, ast.Name) and f.id in ("import_module", "__import__")
    )


def _dynamic_in_functions(node: ast.AST, in_function: bool = False) -> Iterator[ast.Call]:
    """Every dynamic import called inside a function (one at module level runs at import)."""
    for child in ast.iter_child_nodes(node):
        inside = in_function or isinstance(
            child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        )
        if inside and _is_dynamic_import(child):
            assert isinstance(child, ast.Call)
            yield child
        yield from _dynamic_in_functions(child, inside)


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]
) -> set[str]:
    """The batchgen modules an import statement loads (besides their parent packages)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
        return {_known_prefix(n, known) for n in names if n.split(".")[0] == "batchgen"} - {""}
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    if source.split(".")[0] != "batchgen":
        return set()
    found = set()
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        found.add(sub if sub in known else _known_prefix(source, known))
    return found - {""}


def _known_prefix(name: str, known: set[str]) -> str:
    parts = name.split(".")
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts)


def _has_reason(lines: list[str], node: ast.stmt | ast.expr) -> bool:
    """A ``# lazy:`` comment on the import's lines, or above it: over the comments and the
    imports of the same block (one reason may serve a block of imports, its third-party and
    batchgen groups apart by a blank line)."""
    end = node.end_lineno or node.lineno
    if any("# lazy:" in lines[i - 1] for i in range(node.lineno, end + 1)):
        return True
    i = node.lineno - 1
    while i >= 1:
        text = lines[i - 1].strip()
        if "# lazy:" in text:
            return True
        in_block = text.startswith(("#", "from ", "import ", ")")) or text.endswith((",", "("))
        in_block = in_block or "import_module(" in text
        # the blank line ruff puts between a block's third-party and batchgen imports
        in_block = in_block or (not text and lines[i - 2].strip().startswith(("import ", "from ")))
        if not in_block:
            return False
        i -= 1
    return False


def read_graph() -> tuple[dict[str, set[str]], list[tuple[str, int, bool]]]:
    """module -> the batchgen modules it imports; and every lazy import as (module, line,
    has a reason): an import statement inside a function, or a call of
    ``importlib.import_module``/``__import__`` there (a deferred import by another name)."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = defaultdict(set)
    lazy: list[tuple[str, int, bool]] = []
    for module, path in modules.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        is_package = path.name == "__init__.py"
        graph[module]
        for node, in_function, typing_only in _walk(ast.parse(text)):
            graph[module] |= _targets(node, module, is_package, known) - {module}
            if in_function and not typing_only:
                lazy.append((module, node.lineno, _has_reason(lines, node)))
        for call in _dynamic_in_functions(ast.parse(text)):
            lazy.append((module, call.lineno, _has_reason(lines, call)))
    return dict(graph), lazy


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each with one
    circle through it spelled out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_circle_in(graph, set(c)) for c in components]


def _circle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One circle through the component's first module (breadth-first back to it)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, set()) & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(component)


def test_the_graph_sees_imports_inside_functions_and_type_checking() -> None:
    """The reader itself: a lazy import and a TYPE_CHECKING one are edges too."""
    src = (
        "from typing import TYPE_CHECKING\n"
        "from batchgen.errors import UsageError\n"
        "if TYPE_CHECKING:\n"
        "    from batchgen.money import Budget\n"
        "def f():\n"
        "    from batchgen.session import outcome  # lazy: a reason\n"
        "    import batchgen.runlog.reader\n"
    )
    known = {
        "batchgen.errors",
        "batchgen.money",
        "batchgen.session",
        "batchgen.session.outcome",
        "batchgen.runlog",
        "batchgen.runlog.reader",
    }
    found = [
        (_targets(n, "batchgen.x", False, known), inside, typing)
        for n, inside, typing in _walk(ast.parse(src))
    ]
    assert ({"batchgen.errors"}, False, False) in found
    assert ({"batchgen.money"}, False, True) in found
    assert ({"batchgen.session.outcome"}, True, False) in found
    assert ({"batchgen.runlog.reader"}, True, False) in found
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    # an import by another name inside a function is a lazy import too; at the top it is not
    dynamic = (
        "import importlib\n"
        "importlib.import_module('batchgen.errors')\n"
        "def f(name):\n"
        "    return importlib.import_module(f'batchgen.{name}')\n"
        "def g():\n"
        "    return [__import__('json') for _ in ()]\n"
    )
    assert [c.lineno for c in _dynamic_in_functions(ast.parse(dynamic))] == [4, 6]


def test_no_import_circles() -> None:
    graph, _ = read_graph()
    cycles = find_cycles(graph)
    new = [c for c in cycles if tuple(sorted(set(c))) not in KNOWN_CIRCLES]
    shown = "\n".join("  " + " -> ".join(c) for c in new)
    assert not new, f"{len(new)} import circle(s) in batchgen/:\n{shown}"
    gone = KNOWN_CIRCLES - {tuple(sorted(set(c))) for c in cycles}
    assert not gone, f"no longer circles: take them off KNOWN_CIRCLES: {sorted(gone)}"


def test_lazy_imports_are_few_and_say_why() -> None:
    _, lazy = read_graph()
    unexplained = [f"{m}:{line}" for m, line, why in lazy if not why]
    assert not unexplained, (
        "imports inside functions without a `# lazy:` reason (move them to the top of the "
        "module, or say which start-up cost they avoid):\n  " + "\n  ".join(unexplained)
    )
    assert len(lazy) <= LAZY_CEILING, (
        f"{len(lazy)} imports inside functions, more than the ceiling {LAZY_CEILING}"
    )


if __name__ == "__main__":
    g, lz = read_graph()
    cs = find_cycles(g)
    print(
        f"modules {len(g)}, edges {sum(len(v) for v in g.values())}, lazy imports {len(lz)} "
        f"({sum(1 for *_, w in lz if w)} with a reason), circles {len(cs)}"
    )
    for c in cs:
        print("  " + " -> ".join(c))
    if "-v" in sys.argv:
        per: dict[str, int] = defaultdict(int)
        for m, _, _ in lz:
            per[m] += 1
        for m, n in sorted(per.items(), key=lambda kv: -kv[1]):
            print(f"  {n:4d} {m}")
