"""The exceptions batchgen raises on purpose, for a caller of the library to catch (the tree is
drawn in ``batchgen.errors``' docstring)."""

from __future__ import annotations

from batchgen.errors.taxonomy import ErrorClass


class BatchgenError(Exception):
    """Base of every error batchgen raises on purpose (the tree is in this module's docstring)."""


class UsageError(BatchgenError):
    """Bad arguments or environment: nothing was sent (the CLI exits 2)."""


class ConfigError(UsageError):
    """A setting's value is wrong (a keyword argument of the API, a flag, run.json)."""


class RunDirError(UsageError):
    """The run directory is missing, malformed, or in use."""


class RunLocked(RunDirError):
    """Another live process holds the run's lock."""


class RunStopped(BatchgenError):
    """A session stopped early with jobs pending: ``reason`` is the ErrorClass (auth, quota,
    budget, disk, rate_limit, cancelled); ``batchgen.resume(run_dir)`` finishes the rest."""

    def __init__(self, reason: ErrorClass, message: str, run_dir: str = "") -> None:
        super().__init__(f"stopped ({reason.value}): {message}" if message else reason.value)
        self.reason = reason
        self.message = message
        self.run_dir = run_dir
