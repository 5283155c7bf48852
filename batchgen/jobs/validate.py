"""Whole-file validation and streaming of jobs, through one shared code path.

``validate_file`` and ``iter_jobs`` both consume :func:`_scan`, so they agree exactly on ids
and line numbers. The scan keeps only the ids it has seen (short strings, never job bodies):
a file of millions of lines streams in memory that grows by one id per job.

Ids: a job's explicit ``id`` (or a batch line's ``custom_id``), else ``j-`` + the first 12 hex
of the sha256 of the job's own fields as written (before defaults, so a resume with other
command-line defaults still finds its jobs; the fingerprint covers the full body). The n-th
identical request gets ``-n`` appended. Ids are compared case-insensitively because
``A_1.png`` and ``a_1.png`` are the same file on macOS and Windows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from batchgen.jobs.fields import API_FIELDS, check_defaults, check_fields, unsafe_id_problem
from batchgen.jobs.formats import (
    Hasher,
    JobFileError,
    Problem,
    Record,
    detect_format,
    first_content_line,
    physical_lines,
)
from batchgen.jobs.inputs import InputImage, has_inputs, resolve_inputs
from batchgen.jobs.model import Job, fingerprint, request_bytes
from batchgen.jobs.readers import READERS
from batchgen.jobs.spec import read_spec

_DERIVED_ID = re.compile(r"j-([0-9a-f]{12})(?:-(\d+))?")


@dataclass(frozen=True, slots=True)
class Validation:
    """The result of checking a whole job file before the first request."""

    path: str
    format: str
    jobs: int
    images: int  # the sum of n over all jobs
    sha256: str  # of the file's bytes, as read by this pass
    problems: list[Problem]  # at most max_errors, in line order
    problem_count: int  # all problems found, shown or not
    truncated: bool
    # fields the OpenAI API does not know (sent as is: other servers may accept them),
    # one per field name, at its first line
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Clash(NamedTuple):
    """An id already taken. The first holder's line is looked up afterwards (a second pass,
    only on this error path) so the scan need not remember a line per id."""

    line: int
    id: str
    kind: str  # "duplicate", "takes_derived" (explicit id = an earlier derived one), "derived"


# ---------------------------------------------------------------------------- ids


class _Ids:
    """Every id handed out so far, lower-cased: explicit ids, and derived ids as their 12-hex
    base plus a repeat count (only for bases seen twice or more). Bases are kept as ints:
    32 bytes instead of 61 for the string, per job of a file without ids."""

    def __init__(self, *, trusting: bool = False) -> None:
        self.explicit: set[str] = set()
        self.bases: set[int] = set()
        self.repeats: dict[int, int] = {}
        # after validate_file: the ids are known to be unique, so an explicit id is kept only
        # if it could meet a derived one (memory then no longer grows with a file's ids)
        self.trusting = trusting

    def claim(self, job_id: str) -> str | None:
        """None if the explicit id is free (and now taken), else the kind of clash."""
        key = job_id.lower()
        if self.trusting:
            if _DERIVED_ID.fullmatch(key):
                self.explicit.add(key)
            return None
        if key in self.explicit:
            return "duplicate"
        if key.startswith("j-") and self._derived_taken(key):  # only "j-…" can be derived
            return "takes_derived"
        self.explicit.add(key)
        return None

    def derive(self, digest: str) -> tuple[str, bool]:
        base = int(digest[:12], 16)
        if base in self.bases:
            count = self.repeats[base] = self.repeats.get(base, 1) + 1
            job_id = f"j-{digest[:12]}-{count}"
        else:
            self.bases.add(base)
            job_id = f"j-{digest[:12]}"
        return job_id, job_id not in self.explicit

    def _derived_taken(self, key: str) -> bool:
        match = _DERIVED_ID.fullmatch(key)
        if match is None or (base := int(match[1], 16)) not in self.bases:
            return False
        if match[2] is None:
            return True
        return 2 <= int(match[2]) <= self.repeats.get(base, 1)


# ---------------------------------------------------------------------------- the one scan


def _resolve_format(path: Path, fmt: str | None) -> str | Problem:
    where = str(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        return Problem(where, 0, f"the job file {what}: check the path")
    if fmt is not None:
        if fmt not in READERS and fmt != "spec":
            msg = f"unknown format {fmt!r}: use one of {', '.join(READERS)}, spec"
            return Problem(where, 0, msg)
        return fmt
    detected = detect_format(path, first_content_line(path))
    if detected is None:
        msg = (
            "cannot tell the format of this file from its name or its first line: "
            "name it .jsonl (JSON objects), .csv (with a prompt column) or .txt (one prompt a line)"
        )
        return Problem(where, 1, msg)
    return detected


def _job(
    record: Record, defaults: dict[str, Any], ids: _Ids, inputs: tuple[InputImage, ...] = ()
) -> Job | _Clash:
    fields = record.fields
    missing = {k: v for k, v in defaults.items() if k not in fields} if defaults else None
    body = {**fields, **missing} if missing else fields
    own = fingerprint(fields)
    hashes = tuple(i.log_hash for i in inputs) if inputs else ()
    full = fingerprint(body, hashes) if missing or hashes else own
    if record.explicit_id is not None:
        if clash := ids.claim(record.explicit_id):
            return _Clash(record.line, record.explicit_id, clash)
        return Job(record.explicit_id, record.line, body, full, inputs, record.vars)
    job_id, free = ids.derive(own)
    if not free:
        return _Clash(record.line, job_id, "derived")
    return Job(job_id, record.line, body, full, inputs, record.vars)


def _scan(
    path: Path,
    defaults: dict[str, Any],
    fmt: str,
    hasher: Hasher | None = None,
    *,
    trusting: bool = False,
) -> Iterator[Job | Problem | _Clash]:
    where = str(path)
    ids = _Ids(trusting=trusting)
    spec = fmt == "spec"
    with path.open("rb") as f:
        items = read_spec(path) if spec else READERS[fmt](physical_lines(f, hasher), where)
        for item in items:
            if isinstance(item, Problem):
                yield item
                continue
            found = check_fields(item.fields)
            if item.explicit_id is not None and (bad := unsafe_id_problem(item.explicit_id)):
                found.insert(0, bad)
            if not found and (wire := wire_problem(item.fields)):
                found.append(wire)
            inputs: tuple[InputImage, ...] = ()
            if not found and has_inputs(item.fields):
                model = item.fields.get("model", defaults.get("model"))
                inputs, wrong = resolve_inputs(item.fields, path.parent, model)
                found += wrong
            if found:
                if spec:  # a spec's jobs have no line of their own: name the job
                    found = [f"job {item.explicit_id} (#{item.line}): {m}" for m in found]
                line = 0 if spec else item.line
                yield from (Problem(where, line, message) for message in found)
                continue
            yield _job(item, defaults, ids, inputs)
        if hasher is not None:  # a reader may stop early; the checksum still covers the file
            for chunk in iter(lambda: f.read(1 << 20), b""):
                hasher.update(chunk)


def wire_problem(fields: dict[str, Any]) -> str | None:
    """Why the request encoder (the very function the provider sends with) refuses these
    fields, naming the field and the fix; None when they encode. The defaults a job gets are
    checked strings and small integers, so fields that encode make a body that encodes."""
    try:
        request_bytes(fields)
    except TypeError as exc:
        name = next((k for k in fields if not _encodes(fields[k])), None)
        where = f'"{name}"' if name is not None else "the job"
        if "64-bit" in str(exc):
            why = "holds a whole number beyond 64 bits, which JSON APIs cannot carry"
            fix = "write it as a string, or use a smaller number"
        elif "ecursion" in str(exc):
            why = "is nested more than 254 levels deep, which the request encoder refuses"
            fix = "flatten it"
        else:
            why, fix = f"cannot be sent as JSON ({exc})", "write plain JSON values"
        return f"{where} {why}: {fix}"
    except RecursionError:
        return "the job is nested too deeply to send: flatten it"
    return None


def _encodes(value: Any) -> bool:
    try:
        request_bytes({"v": value})
    except (TypeError, RecursionError):
        return False
    return True


def _clash_problems(
    path: Path, defaults: dict[str, Any], fmt: str, clashes: list[_Clash]
) -> list[Problem]:
    wanted = {clash.id.lower() for clash in clashes}
    holders: dict[str, Job] = {}
    for item in _scan(path, defaults, fmt):
        if isinstance(item, Job) and (key := item.id.lower()) in wanted and key not in holders:
            holders[key] = item
            if len(holders) == len(wanted):
                break
    return [_clash_problem(str(path), clash, holders.get(clash.id.lower())) for clash in clashes]


def _clash_problem(where: str, clash: _Clash, holder: Job | None) -> Problem:
    first = f"line {holder.line}" if holder else "an earlier line"
    if clash.kind == "derived":
        msg = (
            f"this job has no id, and the id derived from its content ({clash.id}) is already "
            f'the explicit id of {first}: give this job an "id", or rename the other'
        )
    elif holder is not None and holder.id != clash.id and holder.id.lower() == clash.id.lower():
        msg = (
            f'id "{clash.id}" differs only in case from "{holder.id}" on {first}: their image '
            "files would overwrite each other on macOS and Windows; rename one"
        )
    elif clash.kind == "takes_derived":
        msg = (
            f'id "{clash.id}" is also the id derived for the job without an id on {first} '
            '("j-" + a hash of the request): choose another id'
        )
    else:
        msg = f'duplicate id "{clash.id}", first used on {first}: give each job its own id'
    return Problem(where, clash.line, msg)


# ---------------------------------------------------------------------------- public API


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def validate_file(
    path: str | Path,
    defaults: Mapping[str, Any] | None = None,
    *,
    max_errors: int = 20,
    fmt: str | None = None,
    on_job: Callable[[Job], None] | None = None,
) -> Validation:
    """Check the whole file (one streaming pass) and count its jobs and images.

    ``defaults`` (model/size/quality/n from the command line; None values ignored) fill what a
    job leaves out. ``fmt`` forces a format instead of detecting it. Raises ValueError only
    for bad defaults; everything wrong with the file is a Problem.

    ``on_job`` sees every job as the scan reaches it — the jobs ``iter_jobs`` would yield,
    in the same order — so a caller can quote or index the file in this same pass instead of
    reading it twice. It runs before the rest of the file is checked: when the result is not
    ``ok``, discard what it collected."""
    path = Path(path)
    given = check_defaults(defaults)
    resolved = _resolve_format(path, fmt)
    if isinstance(resolved, Problem):
        sha = sha256_file(path) if path.is_file() else ""
        return Validation(str(path), "unknown", 0, 0, sha, [resolved], 1, False)
    hasher = hashlib.sha256()
    shown: list[Problem] = []
    clashes: list[_Clash] = []
    # fields the API does not know: the first line of each, and on how many lines
    unknown_first: dict[str, int] = {}
    unknown_lines: dict[str, int] = {}
    count = jobs = images = 0
    for item in _scan(path, given, resolved, hasher):
        if isinstance(item, Job):
            jobs += 1
            images += item.n
            if on_job is not None:
                on_job(item)
            body = item.body  # most jobs hold only API fields: one subset test, no new sets
            if not API_FIELDS.issuperset(body):
                for name in body.keys() - API_FIELDS:
                    unknown_first.setdefault(name, item.line)
                    unknown_lines[name] = unknown_lines.get(name, 0) + 1
            continue
        count += 1
        if len(shown) + len(clashes) >= max_errors:
            continue
        if isinstance(item, _Clash):
            clashes.append(item)
        else:
            shown.append(item)
    if clashes:
        shown.extend(_clash_problems(path, given, resolved, clashes))
    if count == 0 and jobs == 0:
        shown.append(Problem(str(path), 1, _no_jobs_message(resolved)))
        count = 1
    shown.sort(key=lambda p: p.line)
    warnings = [
        _unknown_field(str(path), line, name, unknown_lines[name])
        for name, line in sorted(unknown_first.items(), key=lambda kv: (kv[1], kv[0]))
    ]
    return Validation(
        str(path),
        resolved,
        jobs,
        images,
        hasher.hexdigest(),
        shown,
        count,
        count > len(shown),
        warnings,
    )


def _unknown_field(where: str, line: int, name: str, lines: int = 1) -> Problem:
    """One warning per field, at its first line, with how many lines have it."""
    on = "this line" if lines == 1 else f"{lines} lines, from this one"
    msg = (
        f'"{name}" (on {on}) is not a field of the OpenAI images API: it is sent as is '
        '(some servers accept extra fields; OpenAI answers 400 "Unknown parameter" for every '
        "such job); delete the field or column if it is only a note"
    )
    return Problem(where, line, msg)


def _no_jobs_message(fmt: str) -> str:
    if fmt == "csv":
        return "no jobs: the file has no rows under the header: add one row per prompt"
    return "no jobs: the file is empty or holds only blank lines and comments: add prompts"


def iter_jobs(
    path: str | Path, defaults: Mapping[str, Any] | None = None, *, fmt: str | None = None
) -> Iterator[Job]:
    """Stream the file's jobs, defaults applied. Meant to run after ``validate_file``: the
    first problem (e.g. the file changed since) raises JobFileError. Unique ids are taken as
    checked by that validation: the scan remembers only what deriving ids needs (the bases of
    jobs without an id), not every explicit id, so a pool reading a big file stays flat."""
    path = Path(path)
    given = check_defaults(defaults)
    resolved = _resolve_format(path, fmt)
    if isinstance(resolved, Problem):
        raise JobFileError(resolved)
    for item in _scan(path, given, resolved, trusting=True):
        if isinstance(item, Job):
            yield item
        elif isinstance(item, Problem):
            raise JobFileError(item)
        else:
            raise JobFileError(_clash_problems(path, given, resolved, [item])[0])


def job_index(
    path: str | Path, defaults: Mapping[str, Any] | None = None, *, fmt: str | None = None
) -> Iterator[tuple[str, str, int]]:
    """(id, fingerprint, line) of every job, for the resume scan: same ids as ``iter_jobs``."""
    return ((job.id, job.fingerprint, job.line) for job in iter_jobs(path, defaults, fmt=fmt))
