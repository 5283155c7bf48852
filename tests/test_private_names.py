"""No module reads or writes another module's or a dependency's private names (issue 24).

``obj._name`` is fine where ``obj`` is ``self``/``cls`` or the name belongs to the module
that uses it (its classes cooperate). It fails when:

* ``X._name`` (or ``getattr(X, "_name")`` / ``setattr``) names something no class or
  function of this module defines: another module's internals, or a dependency's;
* ``self._name`` inside a class that subclasses a dependency's class, where that base class
  (read from its source) defines ``_name``: a poke into a library's internals, which ties
  the code to one release of it.

Read from the source with ``ast``; the failure lists file:line. The allow-list holds what
cannot be avoided, each with its reason."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "batchgen"

# names with a leading underscore that are documented public API
DOCUMENTED = frozenset(
    {
        "_replace",
        "_fields",
        "_asdict",
        "_make",
        "_field_defaults",  # typing.NamedTuple's API
        "_exit",  # os._exit: the documented exit without cleanup (forked workers, crash points)
    }
)

# (path under batchgen/, name) -> why it cannot be avoided
ALLOWED: dict[tuple[str, str], str] = {
    ("cli/main.py", "_actions"): "argparse offers no public way to list a parser's actions; "
    "the help texts are rewritten once, after the parser is built",
}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in DOCUMENTED


def _defined_in(tree: ast.AST) -> set[str]:
    """Private names this tree defines: functions, classes, assignments at class or module
    level, and ``self._x = ...`` / ``cls._x = ...`` attribute targets."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[-1])
    return {n for n in names if n.startswith("_")}


def _imported(tree: ast.Module) -> dict[str, str]:
    """Local name -> the dotted path it was imported as, for imports from outside batchgen."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not node.module.startswith("batchgen"):
                out.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("batchgen"):
                    continue
                top = a.name.split(".")[0]
                out[a.asname or top] = a.name if a.asname else top
    return out


def _resolve(dotted: str) -> object | None:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            value = getattr(value, attr, None)
        return value
    return None


def _dependency_privates(cls: ast.ClassDef, imported: dict[str, str]) -> set[str]:
    """The private names a dependency's base class of ``cls`` defines (read from its
    source, every class of its MRO outside batchgen and the standard library's typing)."""
    names: set[str] = set()
    for base in cls.bases:
        if isinstance(base, ast.Subscript):
            base = base.value
        text = ast.unparse(base)
        head, _, rest = text.partition(".")
        if head not in imported:
            continue
        found = _resolve(imported[head] + ("." + rest if rest else ""))
        if not isinstance(found, type):
            continue
        for klass in found.__mro__:
            if klass.__module__.split(".")[0] in _PLAIN_MODULES:
                continue
            try:
                source = textwrap.dedent(inspect.getsource(klass))
            except (OSError, TypeError):
                continue
            names |= _defined_in(ast.parse(source))
    return names


# bases whose private names are not an ABI we could be tied to: the language's own
_PLAIN_MODULES = frozenset({"builtins", "typing", "abc", "collections", "enum", "dataclasses"})


def _attribute_of(node: ast.AST) -> tuple[ast.expr, str] | None:
    """``X._name``, ``getattr(X, "_name"[, d])``, ``setattr(X, "_name", v)``."""
    if isinstance(node, ast.Attribute):
        return node.value, node.attr
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    ):
        return node.args[0], node.args[1].value
    return None


def _violations(rel: str, tree: ast.Module) -> Iterator[str]:
    module_names = _defined_in(tree)
    imported = _imported(tree)
    inherited: dict[int, set[str]] = {}
    # for each self/cls use: the class it is inside of
    owners: dict[int, ast.ClassDef] = {}
    for cls in ast.walk(tree):
        if isinstance(cls, ast.ClassDef):
            for inner in ast.walk(cls):
                owners[id(inner)] = cls  # the innermost class wins (walked later)
    for node in ast.walk(tree):
        found = _attribute_of(node)
        if found is None:
            continue
        target, name = found
        if not _private(name) or (rel, name) in ALLOWED:
            continue
        is_self = isinstance(target, ast.Name) and target.id in ("self", "cls")
        if is_self:
            cls = owners.get(id(node))
            if cls is None:
                continue
            if id(cls) not in inherited:
                inherited[id(cls)] = _dependency_privates(cls, imported)
            if name not in inherited[id(cls)]:
                continue
            yield f"{rel}:{node.lineno}: self.{name} is a private name of a dependency's class"
        elif name not in module_names:
            yield f"{rel}:{node.lineno}: {ast.unparse(target)}.{name} is another module's private"


def test_no_module_touches_another_modules_private_names() -> None:
    found = [line for rel, tree in _modules() for line in _violations(rel, tree)]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_the_check_sees_a_poke() -> None:
    """The rule itself: a read of another object's private, a getattr of one, and a write
    into a dependency's base class are found; self's own and the module's own are not."""
    src = """
import argparse
from batchgen.limits.stop import RunControl

class Mine:
    def __init__(self):
        self._own = 1

    def use(self, other, control):
        control._cancel = None
        getattr(other, "_hidden")
        return self._own, other._own

class Parser(argparse.ArgumentParser):
    def poke(self):
        self._positionals = None
"""
    lines = list(_violations("x.py", ast.parse(src)))
    assert [line.split(":")[1] for line in lines] == ["10", "11", "16"], lines


def test_allow_list_entries_are_still_needed() -> None:
    """An allow-list entry whose use has gone is deleted, not kept."""
    used = {(rel, n) for rel, tree in _modules() for n in _private_uses(tree)}
    stale = sorted(key for key in ALLOWED if key not in used)
    assert not stale, f"allow-list entries no longer used: {stale}"


def _private_uses(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        found = _attribute_of(node)
        if found is not None and _private(found[1]):
            yield found[1]
