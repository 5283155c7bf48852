"""Read, merge and validate price tables (``data/prices.toml`` plus ``--prices FILE``).

Every problem names the file, the key path and the fix, and all of a file's problems are
reported at once, so a user fixes their override in one pass::
    my-prices.toml: models."gpt-image-1".image_output_per_1m must be a number ≥ 0, got 'forty'
"""

from __future__ import annotations

import datetime as dt
import difflib
import importlib.resources
import math
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from batchgen.errors import UsageError
from batchgen.money.table import (
    ANY,
    Constraints,
    CustomSizes,
    ModelPrice,
    PriceTable,
    parse_size,
)

SHIPPED = "batchgen/data/prices.toml"
_SECTIONS = ("models", "output_tokens", "constraints")
_TOKEN_RATES = ("text_input_per_1m", "image_input_per_1m", "image_output_per_1m")
_CACHED_RATES = ("cached_text_input_per_1m", "cached_image_input_per_1m")
_COMMON_KEYS = {"billing", "source", "as_of", "constraints", "note"} | {
    "batch_rate",
    "batch_source",
    "batch_as_of",
}
_CHAT_RATES = ("input_per_1m", "output_per_1m")
_MODEL_KEYS = {
    "tokens": _COMMON_KEYS | set(_TOKEN_RATES) | set(_CACHED_RATES) | {"output_tokens"},
    "per_image": _COMMON_KEYS | {"per_image"},
    # vision chat models used as judges (batchgen score --judge): billed per token
    "chat": _COMMON_KEYS | set(_CHAT_RATES) | {"cached_input_per_1m"},
}
_CUSTOM_KEYS = {f for f in CustomSizes.__dataclass_fields__}
_CONSTRAINT_KEYS = {f for f in Constraints.__dataclass_fields__} - {"name"}


class PricesError(UsageError, ValueError):
    """A price table is missing, unreadable or malformed; the message lists every problem."""


def load_prices(
    override: str | Path | None = None, *, fallback_per_image: float | None = None
) -> PriceTable:
    """The shipped table, with ``override``'s entries merged over it, validated."""
    layers = [(SHIPPED, _read_shipped())]
    if override is not None:
        layers.append((str(override), _read_file(Path(override))))
    return build_table(layers, fallback_per_image=fallback_per_image)


def build_table(
    layers: Iterable[tuple[str, dict[str, Any]]], *, fallback_per_image: float | None = None
) -> PriceTable:
    """Merge raw TOML documents (later layers win) and validate the result."""
    merged: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in _SECTIONS}
    origin: dict[tuple[str, str], str] = {}
    files: list[str] = []
    problems: list[str] = []
    for file, doc in layers:
        files.append(file)
        _merge_layer(file, doc, merged, origin, problems)
    if fallback_per_image is not None and not _is_amount(fallback_per_image):
        problems.append(
            f"--price-per-image must be a number ≥ 0, got {fallback_per_image!r}: "
            "pass the USD price of one image, e.g. --price-per-image 0.04"
        )
    checker = _Checker(merged, origin, problems)
    models = {name: checker.model(name) for name in merged["models"]}
    if problems:
        head = f"{len(problems)} problem(s) in the price table:" if len(problems) > 1 else ""
        msg = "\n  ".join([head, *problems]) if head else problems[0]
        raise PricesError(msg)
    return PriceTable(
        models={k: v for k, v in models.items() if v is not None},
        files=tuple(files),
        fallback_per_image=fallback_per_image,
    )


def _read_shipped() -> dict[str, Any]:
    text = importlib.resources.files("batchgen").joinpath("data/prices.toml").read_text("utf-8")
    return tomllib.loads(text)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        msg = f"{path}: cannot read the price file ({exc.strerror or exc}); check the --prices path"
        raise PricesError(msg) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: not valid TOML ({exc}); fix the syntax (strings need quotes)"
        raise PricesError(msg) from exc


def _merge_layer(
    file: str,
    doc: dict[str, Any],
    merged: dict[str, dict[str, dict[str, Any]]],
    origin: dict[tuple[str, str], str],
    problems: list[str],
) -> None:
    for section, entries in doc.items():
        if section not in _SECTIONS:
            hint = _did_you_mean(section, _SECTIONS)
            problems.append(f"{file}: unknown section [{section}]{hint}; use {list(_SECTIONS)}")
            continue
        if not isinstance(entries, dict):
            problems.append(f'{file}: {section} must be a table of [{section}."NAME"] entries')
            continue
        for name, entry in entries.items():
            where = f'{section}."{name}"'
            if not isinstance(entry, dict):
                problems.append(f"{file}: {where} must be a table, got {entry!r}")
                continue
            old = merged[section].get(name)
            replace_whole = old is None or (
                section == "models"
                and "billing" in entry
                and entry["billing"] != old.get("billing")
            )
            # a changed billing kind leaves no shipped key meaningful, so the entry is replaced
            merged[section][name] = (
                dict(entry) if replace_whole or old is None else {**old, **entry}
            )
            origin[(section, name)] = file


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_amount(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


class _Checker:
    """Turns merged raw entries into records, appending one message per problem."""

    def __init__(
        self,
        merged: dict[str, dict[str, dict[str, Any]]],
        origin: dict[tuple[str, str], str],
        problems: list[str],
    ) -> None:
        self.merged = merged
        self.origin = origin
        self.problems = problems
        self._constraints: dict[str, Constraints | None] = {}
        self._tokens: dict[str, dict[str, dict[str, int]] | None] = {}

    def fail(self, section: str, name: str, key: str, what: str, value: Any = ...) -> None:
        file = self.origin.get((section, name), SHIPPED)
        # TOML has no null: None is a key that is not there
        got = "" if value is ... else ", but it is missing" if value is None else f", got {value!r}"
        self.problems.append(f'{file}: {section}."{name}"{key} {what}{got}')

    def amount(self, section: str, name: str, key: str, value: Any) -> float | None:
        if _is_amount(value):
            return float(value)
        self.fail(section, name, key, "must be a number ≥ 0 (USD, no quotes)", value)
        return None

    def model(self, name: str) -> ModelPrice | None:
        raw = self.merged["models"][name]
        before = len(self.problems)
        billing = raw.get("billing")
        if billing not in _MODEL_KEYS:
            self.fail(
                "models", name, ".billing", 'must be "tokens", "per_image" or "chat"', billing
            )
            return None
        for key in raw:
            if key not in _MODEL_KEYS[billing]:
                hint = _did_you_mean(key, _MODEL_KEYS[billing])
                self.fail("models", name, f".{key}", f"is not a key of a {billing} model{hint}")
        source = raw.get("source")
        if not isinstance(source, str) or not source.strip():
            self.fail("models", name, ".source", "must say where the price comes from", source)
        as_of = raw.get("as_of")
        if isinstance(as_of, dt.date):
            as_of = as_of.isoformat()
        if not isinstance(as_of, str) or not as_of.strip():
            self.fail(
                "models",
                name,
                ".as_of",
                'must be the date the price was read, e.g. "2025-10-01"',
                as_of,
            )
        constraints = None
        if "constraints" in raw:
            constraints = self.constraints_ref(name, raw["constraints"])
        fields: dict[str, Any] = {}
        if billing == "tokens":
            for key in _TOKEN_RATES:
                if key not in raw:
                    self.fail("models", name, f".{key}", "is missing (USD per 1M tokens)")
                else:
                    fields[key] = self.amount("models", name, f".{key}", raw[key])
            for key in _CACHED_RATES:
                if key in raw:
                    fields[key] = self.amount("models", name, f".{key}", raw[key])
            fields["output_tokens"] = self.output_tokens_ref(name, raw.get("output_tokens"))
        elif billing == "chat":
            for key in _CHAT_RATES:
                if key not in raw:
                    self.fail("models", name, f".{key}", "is missing (USD per 1M tokens)")
                else:
                    fields[f"chat_{key}"] = self.amount("models", name, f".{key}", raw[key])
            if "cached_input_per_1m" in raw:
                fields["chat_cached_input_per_1m"] = self.amount(
                    "models", name, ".cached_input_per_1m", raw["cached_input_per_1m"]
                )
        else:
            fields["per_image"] = self.per_image(name, raw.get("per_image"))
        fields.update(self.batch(name, raw))
        if len(self.problems) > before:
            return None
        return ModelPrice(
            name=name,
            billing=billing,
            source=str(source),
            as_of=str(as_of),
            constraints=constraints,
            **fields,
        )

    def batch(self, name: str, raw: dict[str, Any]) -> dict[str, Any]:
        """``batch_rate`` (the Batch API's price as a fraction of live) with its own source."""
        if "batch_rate" not in raw:
            return {}
        rate = raw["batch_rate"]
        if not _is_amount(rate) or rate > 1:
            self.fail(
                "models",
                name,
                ".batch_rate",
                "must be a fraction of the live price in [0, 1], e.g. 0.5",
                rate,
            )
            return {}
        out: dict[str, Any] = {"batch_rate": float(rate)}
        for key in ("batch_source", "batch_as_of"):
            value = raw.get(key)
            if isinstance(value, dt.date):
                value = value.isoformat()
            if not isinstance(value, str) or not value.strip():
                self.fail(
                    "models",
                    name,
                    f".{key}",
                    "must say where the batch price comes from and when",
                    value,
                )
            else:
                out[key] = value
        return out

    def per_image(self, name: str, raw: Any) -> dict[str, dict[str, float]]:
        key = ".per_image"
        if _is_amount(raw):
            return {ANY: {ANY: float(raw)}}
        if not isinstance(raw, dict) or not raw:
            self.fail("models", name, key, "must be a price (USD) or a table quality -> price", raw)
            return {}
        table: dict[str, dict[str, float]] = {}
        for quality, by_size in raw.items():
            where = f"{key}.{quality}"
            if _is_amount(by_size):
                table[quality] = {ANY: float(by_size)}
            elif isinstance(by_size, dict) and by_size:
                table[quality] = {}
                for size, price in by_size.items():
                    self.size_key("models", name, f'{where}."{size}"', size)
                    value = self.amount("models", name, f'{where}."{size}"', price)
                    table[quality][size] = value or 0.0
            else:
                self.fail(
                    "models", name, where, "must be a price or a table size -> price", by_size
                )
        return table

    def size_key(self, section: str, name: str, where: str, size: str) -> None:
        if size != ANY and parse_size(size) is None:
            self.fail(section, name, where, 'is not a size: use "WIDTHxHEIGHT" or "*"')

    def output_tokens_ref(self, name: str, ref: Any) -> dict[str, dict[str, int]]:
        if not isinstance(ref, str):
            self.fail(
                "models",
                name,
                ".output_tokens",
                'must name an [output_tokens."NAME"] table (tokens per image for quoting)',
                ref,
            )
            return {}
        if ref not in self.merged["output_tokens"]:
            known = ", ".join(sorted(self.merged["output_tokens"])) or "none"
            self.fail("models", name, ".output_tokens", f"names no table (known: {known})", ref)
            return {}
        if ref not in self._tokens:
            self._tokens[ref] = self.token_table(ref)
        return self._tokens[ref] or {}

    def token_table(self, ref: str) -> dict[str, dict[str, int]] | None:
        raw = self.merged["output_tokens"][ref]
        if not isinstance(raw, dict) or not raw:
            self.fail("output_tokens", ref, "", "must be a table quality -> size -> tokens", raw)
            return None
        table: dict[str, dict[str, int]] = {}
        for quality, by_size in raw.items():
            if not isinstance(by_size, dict) or not by_size:
                self.fail(
                    "output_tokens", ref, f".{quality}", "must be a table size -> tokens", by_size
                )
                continue
            table[quality] = {}
            for size, tokens in by_size.items():
                where = f'.{quality}."{size}"'
                self.size_key("output_tokens", ref, where, size)
                if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
                    self.fail("output_tokens", ref, where, "must be a whole number ≥ 0", tokens)
                    continue
                table[quality][size] = tokens
        return table

    def constraints_ref(self, name: str, ref: Any) -> Constraints | None:
        if not isinstance(ref, str) or ref not in self.merged["constraints"]:
            known = ", ".join(sorted(self.merged["constraints"])) or "none"
            self.fail(
                "models",
                name,
                ".constraints",
                f'must name a [constraints."NAME"] table (known: {known})',
                ref,
            )
            return None
        if ref not in self._constraints:
            self._constraints[ref] = self.constraints(ref)
        return self._constraints[ref]

    def constraints(self, ref: str) -> Constraints | None:
        raw = self.merged["constraints"][ref]
        before = len(self.problems)
        for key in raw:
            if key not in _CONSTRAINT_KEYS:
                hint = _did_you_mean(key, _CONSTRAINT_KEYS)
                self.fail("constraints", ref, f".{key}", f"is not a constraint key{hint}")
        values: dict[str, Any] = {}
        checks: dict[str, tuple[Callable[[Any], bool], str]] = {
            "n_min": (_is_count, "must be a whole number ≥ 1"),
            "n_max": (_is_count, "must be a whole number ≥ 1"),
            "max_prompt_chars": (_is_count, "must be a whole number ≥ 1"),
            "qualities": (_is_names, "must be a list of strings"),
            "sizes": (_is_names, 'must be a list of "WIDTHxHEIGHT" or "auto" strings'),
            "rejected_params": (_is_names, "must be a list of request body keys"),
            "auto_quality": (_is_name, "must be a quality name"),
            "auto_size": (lambda v: parse_size(v) is not None, 'must be a "WIDTHxHEIGHT" size'),
            "typical_latency_s": (lambda v: _is_amount(v) and v > 0, "must be seconds > 0"),
        }
        for key, (ok, what) in checks.items():
            if key in raw:
                if ok(raw[key]):
                    value = raw[key]
                    values[key] = tuple(value) if isinstance(value, list) else value
                else:
                    self.fail("constraints", ref, f".{key}", what, raw[key])
        if "custom_sizes" in raw:
            values["custom_sizes"] = self.custom_sizes(ref, raw["custom_sizes"])
        if values.get("n_min", 1) > values.get("n_max", 10):
            self.fail("constraints", ref, ".n_min", "must not exceed n_max", values.get("n_min"))
        if len(self.problems) > before:
            return None
        return Constraints(name=ref, **values)

    def custom_sizes(self, ref: str, raw: Any) -> CustomSizes | None:
        if not isinstance(raw, dict):
            self.fail("constraints", ref, ".custom_sizes", "must be a table of limits", raw)
            return None
        for key, value in raw.items():
            if key not in _CUSTOM_KEYS:
                hint = _did_you_mean(key, _CUSTOM_KEYS)
                self.fail("constraints", ref, f".custom_sizes.{key}", f"is not a limit{hint}")
            elif not (_is_amount(value) and value > 0):
                self.fail("constraints", ref, f".custom_sizes.{key}", "must be a number > 0", value)
        return CustomSizes(**{k: v for k, v in raw.items() if k in _CUSTOM_KEYS})


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_names(value: Any) -> bool:
    return isinstance(value, list) and all(_is_name(v) for v in value)
