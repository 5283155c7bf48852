"""``--providers providers.toml`` for the commands: the endpoint file is read and checked by
batchgen.provider.endpoints; here its problems become usage errors (exit 2, nothing sent).

The names below are what cli/common.py, cli/run.py and cli/session.py import; a library
caller uses batchgen.provider.endpoints directly (its problems are EndpointError).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from batchgen.provider.endpoints import (
    EndpointError,
    EndpointSpec,
    build_router,
    describe,
    make_provider,
    unserved,
)
from batchgen.provider.endpoints import from_records as _from_records
from batchgen.provider.endpoints import load_providers as _load_providers
from batchgen.provider.endpoints import resolve_keys as _resolve_keys

__all__ = [
    "EndpointSpec",
    "build_router",
    "describe",
    "from_records",
    "load_providers",
    "make_provider",
    "resolve_keys",
    "unserved",
]

T = TypeVar("T")


def _usage(call: Callable[[], T]) -> T:
    try:
        return call()
    except EndpointError as exc:
        # imported here: cli/common imports this module (no import cycle at load time)
        from batchgen.cli.common import UsageError

        raise UsageError(str(exc)) from exc


def load_providers(path: str | Path) -> list[EndpointSpec]:
    """The endpoints of a providers file, checked; UsageError naming the fix otherwise."""
    return _usage(lambda: _load_providers(path))


def from_records(tables: list[Any], where: str = "run.json") -> list[EndpointSpec]:
    return _usage(lambda: _from_records(tables, where))


def resolve_keys(specs: list[EndpointSpec]) -> dict[str, str]:
    """Each endpoint's key from its variable (a loopback server may need none)."""
    return _usage(lambda: _resolve_keys(specs))
