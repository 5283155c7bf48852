"""Deterministic crash points for subprocess crash tests.

``BATCHGEN_CRASH_AT=<point>:<k>`` makes the process ``os._exit(137)`` (what ``kill -9`` looks
like to a parent) the k-th time ``hit(point)`` runs. Several points may be given, comma
separated: ``flush:before_rename:2,compact:after_rename:1``. With the variable unset, ``hit``
costs one dict lookup, so points may sit on hot paths.

Points in use (grep ``faultpoints.hit`` for the full list):
  flush:before_rename     part file written and fsynced, not yet renamed
  flush:after_rename      part file renamed, directory not yet fsynced
  inflight:before_rename  state/inflight-<session>.json temp written, not yet renamed
  compact:before_rename   compact file written and fsynced, not yet renamed
  compact:after_rename    compact file visible, replaced sources not yet deleted
  compact:mid_delete      first replaced source deleted, the others not yet
"""

from __future__ import annotations

import os

ENV = "BATCHGEN_CRASH_AT"
EXIT_CODE = 137


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, count = item.rpartition(":")
        if not name or not count.isdigit() or int(count) < 1:
            msg = (
                f"{ENV}={spec!r}: item {item!r} is not <point>:<k> with k >= 1 "
                "(e.g. flush:before_rename:1); fix or unset the variable"
            )
            raise ValueError(msg)
        points[name] = int(count)
    return points


# point -> hits left before exiting; empty (the common case) when the variable is unset
_armed: dict[str, int] = _parse(os.environ.get(ENV, ""))


def hit(name: str) -> None:
    """Exit the process abruptly if ``name`` is armed and this is its k-th hit."""
    if not _armed:
        return
    left = _armed.get(name)
    if left is None:
        return
    if left <= 1:
        # _exit skips atexit handlers, finally blocks and buffered writes, like kill -9
        os._exit(EXIT_CODE)
    _armed[name] = left - 1


def arm(spec: str) -> None:
    """Re-read a spec (tests that arm points in-process after import)."""
    _armed.clear()
    _armed.update(_parse(spec))
