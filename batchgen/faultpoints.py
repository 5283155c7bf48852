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
  resume:before_recovery_rows  a resume's session begun, the crashed sessions' requests in
                          flight not yet logged (nor those sessions marked crashed)

``BATCHGEN_FAIL_AT=<point>:<k>[..<m>]`` makes ``fail(point)`` raise ``OSError(ENOSPC)`` (the
disk is full) on its k-th hit, or on hits k to m (``..`` alone: from the k-th on, for good):
``image:write:5..``, ``log:write:2..3``. ``BATCHGEN_FAIL_ERRNO=EROFS`` raises another errno
(a file system remounted read-only). Points in use (grep ``faultpoints.fail``):
  image:write             an image's temp file, before its bytes are written
  log:write               a log part's temp file, before the Parquet bytes are written
  compact:write           a compact file's temp file, before it is written
  file:write              a small file (run.json, the in-flight list), before it is written
"""

from __future__ import annotations

import errno
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


FAIL_ENV = "BATCHGEN_FAIL_AT"
FAIL_ERRNO_ENV = "BATCHGEN_FAIL_ERRNO"


def _parse_failures(spec: str) -> dict[str, list[int]]:
    """point -> [first hit, last hit (0: no end), hits so far]"""
    points: dict[str, list[int]] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, hits = item.rpartition(":")
        first, dots, last = hits.partition("..")
        if not name or not first.isdigit() or int(first) < 1 or (last and not last.isdigit()):
            msg = (
                f"{FAIL_ENV}={spec!r}: item {item!r} is not <point>:<k>[..[<m>]] with k >= 1 "
                "(e.g. image:write:3..); fix or unset the variable"
            )
            raise ValueError(msg)
        end = int(last) if last else (0 if dots else int(first))
        points[name] = [int(first), end, 0]
    return points


_failing: dict[str, list[int]] = _parse_failures(os.environ.get(FAIL_ENV, ""))


def fail(name: str) -> None:
    """Raise the armed OSError if ``name`` is armed for this hit (see the module docstring)."""
    if not _failing:
        return
    window = _failing.get(name)
    if window is None:
        return
    window[2] += 1
    first, last, count = window
    if count >= first and (last == 0 or count <= last):
        code = getattr(errno, os.environ.get(FAIL_ERRNO_ENV, "ENOSPC"), errno.ENOSPC)
        raise OSError(code, f"{os.strerror(code)} (injected at {name}, hit {count})")


def arm(spec: str) -> None:
    """Re-read a spec (tests that arm points in-process after import)."""
    _armed.clear()
    _armed.update(_parse(spec))
