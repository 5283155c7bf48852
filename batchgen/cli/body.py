"""Where a command's body lives: the parser names it, `batchgen` loads it when it runs.

The CLI is two halves, as pip's and git-style CLIs are: the flags and help of every command
(``batchgen/cli/*.py``, light, all imported to build the parser) and each command's body
(``batchgen/cli/commands/*.py``, which imports what it needs at its top: aiohttp, pyarrow,
the session layer). A parser's ``func`` default is a :class:`Body`; calling it loads the one
body module of the command that runs (tests/test_startup.py checks what the parser loads).
A command whose arguments can be refused before its body's imports names a ``check`` from its
light half: a non-None exit code from it ends the command there.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchgen.cli.common import prefer_system_allocator


@dataclass(frozen=True, slots=True)
class Body:
    """``batchgen.cli.commands.<module>.<name>``, loaded on the first call."""

    module: str
    name: str
    check: Callable[[argparse.Namespace], int | None] | None = None

    def load(self) -> Callable[..., int]:
        # before the body's imports load pyarrow: Arrow reads its allocator's choice once
        prefer_system_allocator()
        # lazy: the one import of a command's body (what it needs to run: aiohttp, pyarrow,
        # the session); `batchgen --help` and every command build their parser without it
        found: Callable[..., int] = getattr(
            importlib.import_module(f"batchgen.cli.commands.{self.module}"), self.name
        )
        return found

    def __call__(self, args: argparse.Namespace, **options: Any) -> int:
        if self.check is not None and (refused := self.check(args)) is not None:
            return refused
        return int(self.load()(args, **options))
