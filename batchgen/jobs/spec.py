"""YAML job specs: one template, expanded into jobs over a matrix, zipped lists, a glob of
photos, the rows of a CSV, ``{a|b}`` variants and repeats.

```yaml
defaults: {model: gpt-image-1-mini, quality: low, size: 1024x1024}
prompt: "A {style} photo of a {product} on {background}"
matrix: {style: [studio, lifestyle], background: [oak, marble]}   # every combination
zip:    {product: [mug, lamp], images: [photos/mug.png, photos/lamp.png]}  # paired
repeat: 2
```

Expansion streams: cells come from ``itertools.product`` one at a time (a matrix of 10^6
cells is never held), and :func:`count` is arithmetic, so ``--max-jobs`` refuses a spec
before a single job is made. Order: CSV row → glob file → zip row → matrix cell → variant
→ repeat. Every job's id is built from its cell (``style=studio.background=oak.product=mug.r1``)
and its variables ride along as :attr:`Record.vars` (the log's ``vars`` column).

Variants: ``{a|b|c}`` in the prompt makes one job per option (``v1``, ``v2``… in the vars).
A small parser, not the ``dynamicprompts`` library: there a single ``{word}`` is a
one-option variant (it would swallow our ``{variable}``), its generators return bare strings
(the id and vars need to know which option was taken), and it builds lists.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.jobs.fields import EDIT_ONLY_FIELDS
from batchgen.jobs.formats import Problem, Record, kind_of, show
from batchgen.jobs.specglob import glob_files

SPEC_KEYS = frozenset({"defaults", "prompt", "matrix", "zip", "repeat", "vars_csv", "id"})
INPUT_KEYS = frozenset({"image", "images", "mask"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_GLOB_CHARS = frozenset("*?[")
MAX_REPEAT = 1000


class SpecProblems(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


@dataclass
class Spec:
    path: Path
    template: dict[str, Any]  # request fields (defaults, then top-level fields) with {vars}
    matrix: list[tuple[str, list[Any]]] = field(default_factory=list)
    zipped: list[tuple[str, list[Any]]] = field(default_factory=list)
    repeat: int = 1
    files: list[Path] | None = None  # the images glob, expanded (one job per file)
    csv_path: Path | None = None
    csv_columns: list[str] = field(default_factory=list)
    csv_rows: int = 1
    prefix: str = ""
    variants: list[list[str]] = field(default_factory=list)

    @property
    def variables(self) -> list[str]:
        names = [k for k, _ in self.matrix] + [k for k, _ in self.zipped] + self.csv_columns
        if self.files is not None:
            names.append("stem")
        return names + [f"v{i}" for i in range(1, len(self.variants) + 1)]


def is_spec(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


# ---------------------------------------------------------------------------- loading


def load_spec(path: Path) -> Spec:
    """Read and check a spec (not its jobs' fields: the job scan does that). Raises
    SpecProblems with FILE:LINE problems."""
    # lazy: PyYAML (~25 ms) loads only for a YAML job spec; every job file's reader imports
    # this module to know one (tests/test_startup.py)
    from batchgen.jobs.specyaml import SpecYamlError, load_yaml

    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        data, lines = load_yaml(text)
    except UnicodeDecodeError:
        raise SpecProblems([Problem(where, 0, "not UTF-8 text: save the spec as UTF-8")]) from None
    except SpecYamlError as exc:
        raise SpecProblems([Problem(where, exc.line, exc.message)]) from None
    if not isinstance(data, dict):
        msg = f"a spec is a YAML mapping (prompt:, matrix:, …), got {kind_of(data)}"
        raise SpecProblems([Problem(where, 1, msg)])
    problems: list[Problem] = []

    def bad(key: str, msg: str) -> None:
        problems.append(Problem(where, lines.get(key, 0), f"{key}: {msg}"))

    spec = Spec(path, {})
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        bad("defaults", f"must be a mapping like {{model: gpt-image-1}}, got {kind_of(defaults)}")
        defaults = {}
    fields = {k: v for k, v in data.items() if k not in SPEC_KEYS}
    spec.template = {**defaults, **fields}
    prompt = data.get("prompt", defaults.get("prompt"))
    if not isinstance(prompt, str) or not prompt.strip():
        bad("prompt", f'needs a template string like "A {{style}} photo", got {show(prompt)}')
    else:
        spec.template["prompt"] = prompt
    spec.prefix = _safe(str(data["id"])) if data.get("id") is not None else ""
    spec.matrix = _lists(data.get("matrix"), "matrix", bad)
    spec.zipped = _lists(data.get("zip"), "zip", bad)
    if spec.zipped and len({len(v) for _, v in spec.zipped}) > 1:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in spec.zipped)
        bad(
            "zip",
            f"lists of unequal lengths ({sizes}): zip pairs the n-th items, give each "
            "list the same number of items (or use matrix for every combination)",
        )
    repeat = data.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= MAX_REPEAT:
        bad("repeat", f"must be a whole number from 1 to {MAX_REPEAT}, got {show(repeat)}")
    else:
        spec.repeat = repeat
    _globbed(spec, bad)
    _csv(spec, data.get("vars_csv"), bad)
    names = spec.variables
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        bad(
            "matrix" if "matrix" in data else "zip",
            f"variable(s) {', '.join(dupes)} defined twice: each variable comes from one place",
        )
    if isinstance(spec.template.get("prompt"), str):
        spec.variants = _variants(spec.template["prompt"])
        names = spec.variables
    for key, value in spec.template.items():
        for name in _placeholders(value, variants=key == "prompt"):
            if name not in names:
                known = ", ".join(names) or "none"
                bad(
                    key if key in lines else "prompt",
                    f"{{{name}}} is not a variable (variables: {known}): define it under "
                    "matrix or zip, add a vars_csv column, or fix the spelling",
                )
    if problems:
        raise SpecProblems(problems)
    return spec


def _lists(value: Any, key: str, bad: Any) -> list[tuple[str, list[Any]]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        bad(key, f"must be a mapping of variable → list, got {kind_of(value)}")
        return []
    out = []
    for name, items in value.items():
        if not isinstance(items, list) or not items:
            bad(key, f"{name} must be a non-empty list like [a, b], got {show(items)}")
            continue
        if any(isinstance(i, dict | list) and name not in INPUT_KEYS for i in items):
            bad(key, f"{name}: each item must be a single value (text or number)")
            continue
        out.append((str(name), items))
    return out


def _globbed(spec: Spec, bad: Any) -> None:
    for key in ("images", "image"):
        value = spec.template.get(key)
        if isinstance(value, str) and _GLOB_CHARS & set(value):
            # relative to the spec's folder, made absolute: a later step must not join it
            # to that folder again (spec/spec/photos/a.png)
            base = spec.path.parent.absolute()
            pattern = value if Path(value).is_absolute() else str(base / value)
            found = sorted(glob_files(pattern))
            if not found:
                bad(key, f'the pattern "{value}" matches no file: check the folder and pattern')
            spec.files = found  # one job per file: its "image"
            del spec.template[key]
            return


def _csv(spec: Spec, value: Any, bad: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        bad("vars_csv", f"must be a path to a CSV file, got {kind_of(value)}")
        return
    path = spec.path.parent / value
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = sum(1 for row in reader if any(c.strip() for c in row))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        bad("vars_csv", f'cannot read "{value}" ({exc}): check the path (relative to the spec)')
        return
    if not header or not rows:
        bad("vars_csv", f'"{value}" needs a header row and at least one row of values')
        return
    spec.csv_path = path
    spec.csv_columns = [c.strip() for c in header]
    spec.csv_rows = rows


def _placeholders(value: Any, *, variants: bool) -> Iterator[str]:
    if isinstance(value, str):
        for m in _PLACEHOLDER.finditer(value):
            if not (variants and "|" in m[1]):
                yield m[1].strip()
    elif isinstance(value, list):
        for item in value:
            yield from _placeholders(item, variants=False)


def _variants(prompt: str) -> list[list[str]]:
    return [m[1].split("|") for m in _PLACEHOLDER.finditer(prompt) if "|" in m[1]]


# ---------------------------------------------------------------------------- expansion


def count(spec: Spec) -> int:
    """How many jobs the spec expands to, computed (nothing is expanded)."""
    cells = math.prod(len(v) for _, v in spec.matrix)
    zipped = len(spec.zipped[0][1]) if spec.zipped else 1
    files = len(spec.files) if spec.files is not None else 1
    variants = math.prod(len(v) for v in spec.variants)
    rows = spec.csv_rows if spec.csv_path is not None else 1
    return cells * zipped * files * variants * rows * spec.repeat


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-")[:40] or "x"


def _stem(value: Any) -> str:
    return Path(str(value)).stem if isinstance(value, str) else str(value)


def _substitute(value: Any, names: dict[str, str], picks: list[str] | None = None) -> Any:
    if isinstance(value, str):
        it = iter(picks or ())

        def one(m: re.Match[str]) -> str:
            if picks is not None and "|" in m[1]:
                return next(it)
            return names.get(m[1].strip(), m[0])

        return _PLACEHOLDER.sub(one, value)
    if isinstance(value, list):
        return [_substitute(v, names) for v in value]
    return value


def _csv_rows(spec: Spec) -> Iterator[tuple[int, dict[str, str]]]:
    if spec.csv_path is None:
        yield 0, {}
        return
    with spec.csv_path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        next(reader, None)
        number = 0
        for row in reader:
            if any(c.strip() for c in row):
                number += 1
                yield (
                    number,
                    {
                        c: (row[i].strip() if i < len(row) else "")
                        for i, c in enumerate(spec.csv_columns)
                    },
                )


def records(spec: Spec) -> Iterator[Record]:
    """Every job of the spec, streamed. ``line`` is the job's 1-based position."""
    position = itertools.count(1)
    files: list[Path | None] = list(spec.files) if spec.files is not None else [None]
    zip_len = len(spec.zipped[0][1]) if spec.zipped else 1
    matrix_names = [k for k, _ in spec.matrix]
    for row_no, row in _csv_rows(spec):
        for file in files:
            for z in range(zip_len):
                zipped = [(k, v[z]) for k, v in spec.zipped]
                for cell in itertools.product(*(v for _, v in spec.matrix)):
                    pairs = list(zip(matrix_names, cell, strict=True)) + zipped
                    for picks in itertools.product(*spec.variants):
                        for r in range(1, spec.repeat + 1):
                            yield _record(
                                spec, next(position), pairs, row_no, row, file, list(picks), r
                            )


def _record(
    spec: Spec,
    line: int,
    pairs: list[tuple[str, Any]],
    row_no: int,
    row: dict[str, str],
    file: Path | None,
    picks: list[str],
    r: int,
) -> Record:
    names: dict[str, str] = {}
    parts: list[str] = [spec.prefix] if spec.prefix else []
    fields = dict(spec.template)
    others = [k for k, _ in pairs if k not in INPUT_KEYS]
    for key, value in pairs:
        text = value if isinstance(value, str) else str(value)
        names[key] = text
        if key in INPUT_KEYS or key in _REQUEST_KEYS:
            fields[key] = value
        if key not in INPUT_KEYS:
            parts.append(f"{_safe(key)}={_safe(text)}")
        elif not others:
            parts.append(f"{_safe(key)}={_safe(_stem(value))}")
    if spec.csv_path is not None:
        names.update(row)
        parts.append(f"row={row_no}")
    if file is not None:
        names["stem"] = file.stem
        fields["image"] = str(file)
        parts.append(f"stem={_safe(file.stem)}")
    for i, pick in enumerate(picks, 1):
        names[f"v{i}"] = pick
        parts.append(f"v{i}={_safe(pick)}")
    if spec.repeat > 1:
        parts.append(f"r{r}")
    fields = {k: _substitute(v, names, picks if k == "prompt" else None) for k, v in fields.items()}
    job_id = ".".join(parts) or "job"
    if len(job_id) > 128:
        digest = hashlib.sha256(job_id.encode()).hexdigest()[:10]
        job_id = f"{job_id[:110].rstrip('.')}.{digest}"
    return Record(line, fields, job_id, names)


# matrix / zip keys that are request fields set the field itself (quality: [low, high]);
# "style" and "background" are left to the template: they are everyday words in prompts
# ("on {background}"), and the API's own values (vivid, opaque) are rarely varied
_REQUEST_KEYS = frozenset(
    {
        "model",
        "size",
        "quality",
        "n",
        "output_format",
        "output_compression",
        "moderation",
        *EDIT_ONLY_FIELDS,
    }
)


def read_spec(path: Path) -> Iterator[Record | Problem]:
    """The spec as a job-file reader: its problems, else its records."""
    try:
        spec = load_spec(path)
    except SpecProblems as exc:
        yield from exc.problems
        return
    yield from records(spec)
