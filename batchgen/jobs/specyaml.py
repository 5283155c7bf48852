"""Reading a spec's YAML safely: bounded before it is built, duplicate keys refused.

PyYAML's ``safe_load`` shares the node of an anchor with each of its aliases, so a 1 KB
"billion laughs" spec loads at once — and then every walk over it (placeholders, the request
body, its size) visits each alias again: 10⁹ nodes. Its composer also recurses per level, so
50,000 nested ``[`` raise RecursionError. So the text is first read as a stream of events
(the parser keeps its own stack, no recursion) to bound three things with FILE:LINE errors:
- nesting depth (``MAX_DEPTH`` levels),
- the expanded size: every node counted as often as aliases repeat it (``MAX_NODES``),
- then, on the composed nodes, a key given twice in one mapping (YAML says keys are unique;
  PyYAML keeps the last silently — ``matrix:`` twice would lose the first), and a value JSON
  cannot carry: ``.nan`` / ``.inf`` / ``1.0e+400`` (sent as ``null`` without a word),
  ``!!binary`` bytes and ``!!set`` (no JSON for them: a traceback at send time).

A YAML 1.1 date (``user: 2024-01-01``) is kept as the text written, as YAML 1.2 reads it: a
``date`` object has no JSON either, and the spec's author wrote text.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import yaml
from yaml import events as ev

MAX_DEPTH = 64
MAX_NODES = 200_000


_TAG = "tag:yaml.org,2002:"
# tags whose values JSON has no form for: what to write instead
_NOT_JSON = {
    f"{_TAG}binary": "!!binary is bytes, which a JSON request cannot carry: write the value "
    "as a plain (base64) string",
    f"{_TAG}set": "!!set has no JSON form: write a list like [a, b]",
}


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that keeps a timestamp as the text written (module doc)."""

    yaml_constructors: ClassVar[dict[Any, Any]] = {
        **yaml.SafeLoader.yaml_constructors,
        f"{_TAG}timestamp": yaml.SafeLoader.construct_yaml_str,
    }


class SpecYamlError(ValueError):
    """A problem at ``line`` (1-based; 0: the whole file) of the spec."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def load_yaml(text: str) -> tuple[Any, dict[str, int]]:
    """The spec's data, and the line (1-based) of each top-level key (where a problem with
    that key's value is reported), from one composition of the text; SpecYamlError for bad
    syntax, a bomb, a deep nest or a duplicate key."""
    try:
        _bound(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None, {}
        _check_nodes(node)
        loader = _SpecLoader(text)
        try:
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        msg = f"not valid YAML ({getattr(exc, 'problem', None) or exc}): fix the syntax"
        raise SpecYamlError(line, msg) from None
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if hasattr(k, "value")}
    return data, lines


def _bound(text: str) -> None:
    sizes = [0]  # expanded node count of each open collection (and the document)
    anchors: dict[str, int] = {}
    open_anchor: list[str | None] = [None]
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, ev.ScalarEvent):
            add = 1
            if event.anchor:
                anchors[event.anchor] = 1
        elif isinstance(event, ev.AliasEvent):
            add = anchors.get(str(event.anchor), 1)
        elif isinstance(event, ev.CollectionStartEvent):
            if len(sizes) > MAX_DEPTH:
                msg = (
                    f"nested more than {MAX_DEPTH} levels deep: a spec is a few levels "
                    "(matrix → variable → list); flatten it"
                )
                raise SpecYamlError(line, msg)
            sizes.append(1)
            open_anchor.append(event.anchor)
            continue
        elif isinstance(event, ev.CollectionEndEvent):
            add = sizes.pop()
            anchor = open_anchor.pop()
            if anchor:
                anchors[anchor] = add
        else:
            continue
        sizes[-1] += add
        total += add if isinstance(event, ev.AliasEvent) else 0
        if sizes[-1] > MAX_NODES or total > MAX_NODES:
            msg = (
                f"expands to more than {MAX_NODES:,} values through aliases (*name): an "
                "alias bomb? Write the values out, or use vars_csv for long lists"
            )
            raise SpecYamlError(line, msg)


def _check_nodes(root: Any) -> None:
    """Duplicate keys, and values JSON cannot carry (module doc), with their line."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.tag in _NOT_JSON:
            raise SpecYamlError(node.start_mark.line + 1, _NOT_JSON[node.tag])
        if isinstance(node, yaml.ScalarNode) and node.tag == f"{_TAG}float":
            _finite(node)
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if key.value in first:
                        msg = (
                            f"{key.value}: given twice (lines {first[key.value]} and {line}); "
                            "YAML keeps only the last: merge them into one"
                        )
                        raise SpecYamlError(line, msg)
                    first[key.value] = line
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _finite(node: yaml.ScalarNode) -> None:
    text = node.value.lower().replace("_", "")
    try:
        value = float(text.replace(".inf", "inf").replace(".nan", "nan"))
    except ValueError:
        return  # a YAML 1.1 base-60 float (1:30.5): finite
    if not math.isfinite(value):
        msg = (
            f"{node.value} is not a finite number, and JSON has none (it would be sent as "
            f'null): write a number, or quote it ("{node.value}") to send it as text'
        )
        raise SpecYamlError(node.start_mark.line + 1, msg)
