"""The machinery of the report's sections: a frozen dataclass that writes itself as the JSON
document's dict (``to_dict``: its fields in order, nested sections, tuples as lists) and reads
itself back from one (``from_dict``: a saved ``--format json`` document; unknown and missing
keys refused, nested sections, tuples and optional values typed by the annotations). The
analyzers build the sections directly; they are in ``batchgen.analyze.model``."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Self

from batchgen.errors import printable_all

Json = Any


# a key the document leaves out when it has no value (``grid`` without ``--grid``)
OMIT_IF_NONE = {"omit_if_none": True}


class Section:
    """A frozen dataclass read from / written to the report's JSON-ready dict."""

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Self:
        hints = _hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = [k for k in doc if k not in names]
        if unknown:
            msg = f"report section {cls.__name__}: unknown key(s) {unknown}; add them to model.py"
            raise ValueError(msg)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in doc:
                values[f.name] = _load(hints[f.name], doc[f.name])
            elif not f.metadata.get("omit_if_none"):
                msg = f"report section {cls.__name__}: missing key {f.name!r}"
                raise ValueError(msg)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_if_none"):
                continue
            out[f.name] = _dump(value)
        return out

    def printable(self) -> Self:
        """The same section with every string's terminal control sequences removed."""
        return type(self).from_dict(printable_all(self.to_dict()))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _load(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin is types.UnionType or origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _load(args[0], value) if len(args) == 1 else value
    if isinstance(tp, type) and issubclass(tp, Section):
        return tp.from_dict(value)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        return tuple(_load(item, v) for v in value)
    if origin is dict:
        item = typing.get_args(tp)[1]
        return {k: _load(item, v) for k, v in value.items()}
    return value


def _dump(value: Any) -> Any:
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value
