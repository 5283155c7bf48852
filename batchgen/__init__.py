"""batchgen: batch image generation for OpenAI-compatible image APIs.

The public surface is ``__all__``: ``run``/``run_async``, ``resume``/``resume_async`` and
``report`` (batchgen.api), their result types (``RunResult``, ``Progress``, ``Report``),
``RunConfig`` and the errors a caller can catch (the tree is in batchgen.errors). Everything
is loaded on first use, so importing batchgen (or the CLI, ``batchgen.cli.main``) stays
cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from batchgen.api import Progress, RunResult, report, resume, resume_async, run, run_async
    from batchgen.config import RunConfig
    from batchgen.errors import (
        BatchgenError,
        ConfigError,
        ErrorClass,
        RunDirError,
        RunLocked,
        RunStopped,
        UsageError,
    )
    from batchgen.jobs import JobFileError
    from batchgen.money import PricesError
    from batchgen.reports import Report
    from batchgen.runlog.writer import RunLogError

# public name -> the module that defines it
_WHERE = {
    "run": "batchgen.api",
    "run_async": "batchgen.api",
    "resume": "batchgen.api",
    "resume_async": "batchgen.api",
    "report": "batchgen.api",
    "RunResult": "batchgen.api",
    "Progress": "batchgen.api",
    "RunConfig": "batchgen.config",
    "Report": "batchgen.reports",
    "BatchgenError": "batchgen.errors",
    "UsageError": "batchgen.errors",
    "ConfigError": "batchgen.errors",
    "RunDirError": "batchgen.errors",
    "RunLocked": "batchgen.errors",
    "RunStopped": "batchgen.errors",
    "ErrorClass": "batchgen.errors",
    "JobFileError": "batchgen.jobs",
    "PricesError": "batchgen.money",
    "RunLogError": "batchgen.runlog.writer",
}

__all__ = [
    "BatchgenError",
    "ConfigError",
    "ErrorClass",
    "JobFileError",
    "PricesError",
    "Progress",
    "Report",
    "RunConfig",
    "RunDirError",
    "RunLocked",
    "RunLogError",
    "RunResult",
    "RunStopped",
    "UsageError",
    "__version__",
    "report",
    "resume",
    "resume_async",
    "run",
    "run_async",
]


def __getattr__(name: str) -> Any:  # PEP 562: load the API when it is first used
    module = _WHERE.get(name)
    if module is None:
        msg = f"module 'batchgen' has no attribute {name!r}"
        raise AttributeError(msg)
    # lazy: PEP 562, `import batchgen` loads no submodule (tests/test_startup.py);
    # `batchgen.run` and the other names load their module on first use
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
