"""A job: one request to the images endpoint, with a stable id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from batchgen.jobs.inputs import job_input_tokens

if TYPE_CHECKING:
    from batchgen.jobs.inputs import InputImage


# One encoder for all calls: json.dumps(sort_keys=True) builds a new one per call, which is
# most of the cost of indexing a million-line job file for resume.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_SCALARS = (str, int, bool, type(None))


def _plain(value: Any) -> bool:
    """Only dicts with string keys, lists, strings, integers, booleans and null (exact types):
    what orjson writes byte for byte as ``_CANONICAL`` does. Not a float (the two write
    ``1e+16`` and ``1e16``), a tuple, a subclass or anything the standard library refuses
    and orjson would write (a date, a dataclass). Scalars are checked inline, so a job's
    flat body is one call; only a nested container recurses."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is dict:
        for key, inner in value.items():
            if type(key) is not str or (type(inner) not in _SCALARS and not _plain(inner)):
                return False
        return True
    if kind is list:
        return all(type(inner) in _SCALARS or _plain(inner) for inner in value)
    return False


def canonical_json(body: dict[str, Any]) -> str:
    """Keys sorted, no spaces, UTF-8 as is: the text fingerprints (and the log's ``params``)
    are made of, the same in every version. orjson writes exactly that text for plain JSON
    values (every code point, key order and 64-bit integer checked against the standard
    library: tests/test_jobs.py) at 1/30 of its cost; anything else, or what orjson refuses
    (an integer beyond 64 bits, nesting past 254 levels), goes through the standard
    library's encoder as before."""
    try:
        if _plain(body):
            return orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()
    except (orjson.JSONEncodeError, RecursionError):
        pass
    return _CANONICAL.encode(body)


def request_bytes(body: dict[str, Any]) -> bytes:
    """The body exactly as it goes on the wire: the provider sends this, and validation runs
    it on every job first, so a body the encoder refuses (an integer beyond 64 bits, nesting
    deeper than 254 levels) is a FILE:LINE problem before anything is sent, not a crash
    mid-run. Raises TypeError (orjson.JSONEncodeError) for such a body."""
    return orjson.dumps(body)


def fingerprint(body: dict[str, Any], input_hashes: tuple[str, ...] = ()) -> str:
    """sha256 of the request body (canonical JSON): tells an edited job from an unchanged one.
    An edit's input images count by content: ``input_hashes`` (their sha256) are folded in,
    so a changed source photo is an edited job."""
    text = canonical_json(body)
    if input_hashes:
        text += "\x00inputs:" + ",".join(input_hashes)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Job:
    """One request. ``body`` is the full JSON body sent to ``/images/generations``
    (prompt, model, size, quality, n, and any pass-through fields), defaults applied.
    ``line`` is the 1-based line of the job file it came from (for FILE:LINE messages)."""

    id: str
    line: int
    body: dict[str, Any] = field(hash=False)
    fingerprint: str = ""
    # an edit's input images (batchgen.jobs.inputs), images first, then the mask
    inputs: tuple[InputImage, ...] = field(default=(), hash=False)
    # a spec's variables for this cell (style=studio, ...): logged, never sent
    vars: dict[str, str] | None = field(default=None, hash=False)
    # read from the body once: the quote, the budget, the limiter and the log row each ask
    # for them, per job and per attempt
    model: str | None = field(init=False, hash=False, compare=False, repr=False)
    size: str | None = field(init=False, hash=False, compare=False, repr=False)
    quality: str | None = field(init=False, hash=False, compare=False, repr=False)
    n: int = field(init=False, hash=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        body = self.body
        object.__setattr__(self, "model", body.get("model"))
        object.__setattr__(self, "size", body.get("size"))
        object.__setattr__(self, "quality", body.get("quality"))
        object.__setattr__(self, "n", int(body.get("n") or 1))

    @classmethod
    def make(
        cls,
        id: str,
        line: int,
        body: dict[str, Any],
        inputs: tuple[InputImage, ...] = (),
        vars: dict[str, str] | None = None,
    ) -> Job:
        fp = fingerprint(body, tuple(i.log_hash for i in inputs))
        return cls(id=id, line=line, body=body, fingerprint=fp, inputs=inputs, vars=vars)

    @property
    def is_edit(self) -> bool:
        return bool(self.inputs)

    @property
    def input_image_tokens(self) -> int:
        """The quote's estimate of the input image tokens of an edit (0 for a generation)."""
        if not self.inputs:
            return 0

        return job_input_tokens(self.inputs, self.body.get("input_fidelity"))

    def log_fields(self) -> dict[str, Any]:
        """The log's ``input_hashes`` and ``vars`` columns (null for a plain generation)."""
        return {
            "input_hashes": [i.log_hash for i in self.inputs] if self.inputs else None,
            "vars": canonical_json(self.vars) if self.vars else None,
        }

    @property
    def prompt(self) -> str:
        return str(self.body["prompt"])

    def params_json(self) -> str:
        """Everything but the prompt, as canonical JSON (the log's ``params`` column)."""
        params = self.body.copy()
        params.pop("prompt", None)
        return canonical_json(params)
