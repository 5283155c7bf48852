"""The settings a pilot tries: ``--try model=a,b quality=low,high`` (every combination), or a
default ladder per provider; a setting overrides those fields of every sampled job."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchgen.errors import UsageError

# fields a setting may change: the request's own, never the prompt or an edit's inputs
_FORBIDDEN = frozenset({"prompt", "image", "images", "mask", "id"})
_FIELD = re.compile(r"[a-z_][a-z0-9_]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_INT_FIELDS = frozenset({"n", "output_compression", "seed"})

# from cheap to dear: the draft tier, then production (DESIGN.md: model tiers by cost)
_OPENAI_LADDER: tuple[dict[str, Any], ...] = (
    {"model": "gpt-image-1-mini", "quality": "low"},
    {"model": "gpt-image-1-mini", "quality": "medium"},
    {"model": "gpt-image-1", "quality": "medium"},
    {"model": "gpt-image-1", "quality": "high"},
)
DEFAULT_LADDERS: Mapping[str, tuple[dict[str, Any], ...]] = {
    "openai": _OPENAI_LADDER,
    "sim": _OPENAI_LADDER,
    "azure": _OPENAI_LADDER,
}


@dataclass(frozen=True, slots=True)
class Setting:
    values: dict[str, Any]

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items())

    @property
    def slug(self) -> str:
        """A short, file-name-safe tag: the pilot's job ids are ``<job id>=<slug>``."""
        text = _UNSAFE.sub("-", "_".join(str(v) for v in self.values.values())).strip("-")
        if len(text) > 40:
            text = text[:31] + "-" + hashlib.sha256(self.label.encode()).hexdigest()[:8]
        return text or "default"

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {**body, **self.values}


def parse_try(items: Sequence[str]) -> list[Setting]:
    """``["model=a,b", "quality=low,high"]`` → the 4 combinations, in the order given.
    Raises UsageError naming the item and the fix."""
    axes: list[tuple[str, list[Any]]] = []
    for item in items:
        key, sep, rest = item.partition("=")
        key = key.strip()
        if not sep or not _FIELD.fullmatch(key) or not rest.strip():
            msg = (
                f"--try {item!r}: expected FIELD=VALUE[,VALUE...], "
                "e.g. --try model=gpt-image-1-mini,gpt-image-1 quality=low,medium"
            )
            raise UsageError(msg)
        if key in _FORBIDDEN:
            raise UsageError(f"--try {item!r}: a pilot compares settings, not {key!r}")
        if any(key == k for k, _ in axes):
            raise UsageError(f"--try: {key!r} given twice; list its values once: {key}=a,b")
        values = [_value(key, v.strip(), item) for v in rest.split(",") if v.strip()]
        if len(set(map(str, values))) != len(values):
            raise UsageError(f"--try {item!r}: a value is listed twice")
        axes.append((key, values))
    settings = [
        Setting(dict(zip([k for k, _ in axes], combo, strict=True)))
        for combo in itertools.product(*[v for _, v in axes])
    ]
    _check_slugs(settings)
    return settings


def default_ladder(provider: str | None) -> list[Setting]:
    ladder = DEFAULT_LADDERS.get(provider or "openai")
    if ladder is None:
        msg = (
            f"no default settings for provider {provider!r}: say what to try, e.g. "
            "--try model=MODEL_A,MODEL_B quality=low,high"
        )
        raise UsageError(msg)
    return [Setting(dict(values)) for values in ladder]


def _value(key: str, text: str, item: str) -> Any:
    if key in _INT_FIELDS:
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"--try {item!r}: {key} takes whole numbers, got {text!r}") from None
    return text


def _check_slugs(settings: list[Setting]) -> None:
    seen: dict[str, str] = {}
    for s in settings:
        if s.slug in seen:
            msg = f"--try: settings {seen[s.slug]!r} and {s.label!r} look alike; rename a value"
            raise UsageError(msg)
        seen[s.slug] = s.label
