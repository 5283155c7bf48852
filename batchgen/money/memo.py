"""The money's per-setting memos (``constraints`` and ``cost``): a plain dict each, read with
``dict.get`` on every job, kept bounded by this one rule.

A job file has a handful of distinct settings (model × size × quality × n), so a memo seldom
fills: one that reaches ``MEMO_LIMIT`` entries is emptied, not trimmed (nothing is kept per
entry to tell the oldest), and the next lookups compute again.
(``functools.lru_cache`` was tried on ``cost``'s lookup and is slower on the hit every job
takes, 153 against 114 ns: keyed by the table itself, its dataclass ``__hash__`` runs at each
call, where the memo's key holds the table's ``id()`` and the hit checks it is that table.)"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

MEMO_LIMIT = 4096  # entries a memo holds before it is emptied


def remember(memo: dict[K, V], key: K, value: V) -> V:
    """Keep ``value`` under ``key`` (emptying a full memo first) and return it."""
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    memo[key] = value
    return value
