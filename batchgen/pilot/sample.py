"""The pilot's sample: ``--sample 24`` jobs (or ``--sample 10%``) of the job file, seeded,
and stratified over a spec's variables: each cell of the matrix (its ``vars``) gets its share
of the sample (largest remainders), at least one while the sample has room for every cell;
with more cells than places, each variable's values are balanced instead (3 styles × 4
products × 4 backgrounds sampled 24: each style about 8 times, each product and
background about 6: a greedy balance, within 2 of even)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from typing import Protocol, TypeVar

from batchgen.errors import UsageError


class Sampled(Protocol):
    """What the sample reads of a job (a Job, or a lighter record of one)."""

    @property
    def line(self) -> int: ...
    @property
    def vars(self) -> dict[str, str] | None: ...


J = TypeVar("J", bound=Sampled)


def sample_size(text: str | int, total: int) -> int:
    """``24`` → 24 (at most ``total``); ``10%`` or ``0.1`` → that share, at least 1."""
    raw = str(text).strip()
    try:
        if raw.endswith("%"):
            share = float(raw[:-1]) / 100
        elif "." in raw:
            share = float(raw)
        else:
            count = int(raw)
            if count < 1:
                raise ValueError
            return min(count, total)
    except ValueError:
        msg = f"--sample {raw!r}: give a number of jobs (24) or a share (10% or 0.1)"
        raise UsageError(msg) from None
    if not 0 < share <= 1:
        raise UsageError(f"--sample {raw!r}: a share is above 0 and at most 100%")
    return min(total, max(1, round(share * total)))


def stratum(job: Sampled) -> str:
    """The job's cell of a spec's matrix ("" for a job file without variables)."""
    return json.dumps(job.vars, sort_keys=True) if job.vars else ""


def draw(jobs: Iterable[J], k: int, seed: int) -> list[J]:
    """``k`` jobs, stratified by ``stratum``, in job-file order; the same seed draws the
    same sample from the same file."""
    groups: dict[str, list[J]] = {}
    for job in jobs:
        groups.setdefault(stratum(job), []).append(job)
    total = sum(len(g) for g in groups.values())
    k = min(k, total)
    rng = random.Random(seed)
    if k < len(groups):  # more cells than places: balance each variable's values instead
        return sorted(
            _balanced([j for key in sorted(groups) for j in groups[key]], k, rng),
            key=lambda j: j.line,
        )
    quotas = _quotas({key: len(g) for key, g in groups.items()}, k, rng)
    chosen: list[J] = []
    for key in sorted(groups):
        chosen.extend(rng.sample(groups[key], quotas[key]))
    return sorted(chosen, key=lambda j: j.line)


def _balanced(jobs: list[J], k: int, rng: random.Random) -> list[J]:
    """``k`` jobs, one at a time, each the (seeded) job whose variables' values are the
    least represented so far: every value of every variable appears about as often."""
    order = jobs[:]
    rng.shuffle(order)
    values: dict[str, set[str]] = {}
    for j in jobs:
        for name, value in (j.vars or {}).items():
            values.setdefault(name, set()).add(value)
    # a value's count as a share of what it should get (k spread over its variable's values)
    weight = {name: len(v) / k for name, v in values.items()}
    seen: dict[tuple[str, str], int] = {}
    chosen: list[J] = []
    for _ in range(k):
        best = min(range(len(order)), key=lambda i: _load(seen, weight, order[i]))
        job = order.pop(best)
        chosen.append(job)
        for item in (job.vars or {}).items():
            seen[item] = seen.get(item, 0) + 1
    return chosen


def _load(
    seen: dict[tuple[str, str], int], weight: dict[str, float], job: Sampled
) -> tuple[float, float]:
    shares = [seen.get(item, 0) * weight[item[0]] for item in (job.vars or {}).items()] or [0.0]
    return max(shares), sum(shares)


def _quotas(sizes: dict[str, int], k: int, rng: random.Random) -> dict[str, int]:
    total = sum(sizes.values())
    keys = sorted(sizes)
    if k >= len(keys):  # room for every cell: one each, the rest by share
        base = {key: 1 for key in keys}
        left, pool = k - len(keys), {key: sizes[key] - 1 for key in keys}
    else:  # pragma: no cover - draw balances the variables instead
        return {key: int(i < k) for i, key in enumerate(keys)}
    weight = sum(pool.values())
    if left and weight:
        exact = {key: left * pool[key] / weight for key in keys}
        for key in keys:
            base[key] += min(pool[key], int(exact[key]))
        rest = k - sum(base.values())
        order = sorted(keys, key=lambda key: (-(exact[key] - int(exact[key])), key))
        while rest > 0:
            moved = False
            for key in order:
                if rest and base[key] < sizes[key]:
                    base[key] += 1
                    rest -= 1
                    moved = True
            if not moved:
                break
    assert sum(base.values()) == min(k, total)
    return base
