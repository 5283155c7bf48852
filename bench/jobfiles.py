"""Job files for the benchmarks: JSONL with explicit ids, so every client writes the same files."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

MODEL = "gpt-image-1"


def job_lines(count: int, *, n: int | Sequence[int] = 1, prefix: str = "b") -> Iterator[str]:
    """``count`` distinct jobs of ``n`` images each, low quality (the cheapest real request);
    a sequence of ``n`` is cycled through (1, 2, 4, 1, 2, 4, ...)."""
    width = len(str(count))
    cycle = (n,) if isinstance(n, int) else tuple(n)
    for i in range(count):
        images = cycle[i % len(cycle)]
        body: dict[str, Any] = {
            "id": f"{prefix}{i:0{width}d}",
            "prompt": f"a lighthouse on a cliff at dusk, study {i}",
            "model": MODEL,
            "size": "1024x1024",
            "quality": "low",
        }
        if images != 1:
            body["n"] = images
        yield json.dumps(body, separators=(",", ":"))


def write_jobs(path: Path, count: int, *, n: int | Sequence[int] = 1, prefix: str = "b") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for line in job_lines(count, n=n, prefix=prefix):
            f.write(line)
            f.write("\n")
    return path


def read_jobs(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(id, request body) per line, for the baseline clients."""
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            body = json.loads(line)
            out.append((body.pop("id"), body))
    return out
