"""Read, merge and validate price tables (``data/prices.toml`` plus ``--prices FILE``).

Every problem names the file, the key path and the fix, and all of a file's problems are
reported at once, so a user fixes their override in one pass::
    my-prices.toml: models."gpt-image-1".image_output_per_1m must be a number ≥ 0, got 'forty'
"""

from __future__ import annotations

import importlib.resources
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from batchgen.errors import UsageError
from batchgen.money.checktable import SECTIONS, TableChecker, did_you_mean, is_amount
from batchgen.money.checktable import SHIPPED as SHIPPED
from batchgen.money.table import PriceTable


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
    merged: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in SECTIONS}
    origin: dict[tuple[str, str], str] = {}
    files: list[str] = []
    problems: list[str] = []
    for file, doc in layers:
        files.append(file)
        _merge_layer(file, doc, merged, origin, problems)
    if fallback_per_image is not None and not is_amount(fallback_per_image):
        problems.append(
            f"--price-per-image must be a number ≥ 0, got {fallback_per_image!r}: "
            "pass the USD price of one image, e.g. --price-per-image 0.04"
        )
    checker = TableChecker(merged, origin, problems)
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
        if section not in SECTIONS:
            hint = did_you_mean(section, SECTIONS)
            problems.append(f"{file}: unknown section [{section}]{hint}; use {list(SECTIONS)}")
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
