"""The HTTP transport every client of a provider shares (the images providers, the judge, the
Files and Batch APIs): one aiohttp session per client, the key's redaction, transport
failures (timeout, network) mapped into the taxonomy, capped reads of an answer, JSON that
orjson refuses but the standard allows, and the ``x-ratelimit-*`` headers of an answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aiohttp
import orjson
from yarl import URL

from batchgen.errors import MAX_FIELD_CHARS, AttemptError, ErrorClass, error_code, provider_text
from batchgen.redaction import redact

__all__ = [
    "ERROR_READ_BYTES",
    "MAX_ANSWER_BYTES",
    "MAX_DOWNLOAD_BYTES",
    "KeyedSession",
    "loads",
    "ratelimit_headers",
    "read_capped",
]

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
# a whole answer (n base64 images), counted after gzip/deflate/br decoding: a body of
# hundreds of MB, or a small gzip bomb, is cut off here instead of filling the memory
MAX_ANSWER_BYTES = 128 * 1024 * 1024
# of an error answer only the start is read: the message is in its first few KB
ERROR_READ_BYTES = 64 * 1024
_RATELIMIT_PREFIX = "x-ratelimit-"
# an id that no pattern of batchgen.redaction can match but the key itself and "sk-..." (no
# "@", no space, no "=" or ":"), and no longer than field_text keeps of an id
_PLAIN_ID = re.compile(r"[A-Za-z0-9_\-]{1,200}")


class KeyedSession:
    """A client of one provider: its base URL, its key (only ever sent in the headers a
    subclass builds, never printed: :meth:`_redact`), and one aiohttp session for all its
    requests (connection reuse matters at volume), opened on first use, closed by
    :meth:`aclose`."""

    adds_inflight = False  # the pool's attempt adds the job to the in-flight set (Provider)
    # the header the key travels in: aiohttp drops Authorization itself when a redirect leaves
    # the origin; any other (api-key, x-goog-api-key, x-key) needs :meth:`_key_stays_home`
    key_header = "Authorization"

    def __init__(self, base_url: str, api_key: str, *, connections: int = 100) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        # (a key that is empty or not ASCII is "in" every id: such a client takes the general
        # path, where IGNORECASE folds as redaction does)
        self._key_lower = api_key.lower() if api_key.isascii() else ""
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        home = URL(self.base_url)
        self._home = (home.scheme, home.host, home.port)
        # headers of the caller's that may hold other secrets (a gateway's own key): dropped,
        # like the key, on a hop to another origin
        self._foreign_drop: frozenset[str] = frozenset()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300)
            # (no middleware when aiohttp's own rule is enough: none on the OpenAI hot path)
            guard = self.key_header.lower() != "authorization" or self._foreign_drop
            self._session = aiohttp.ClientSession(
                connector=connector, middlewares=(self._key_stays_home,) if guard else ()
            )
        return self._session

    def key_may_go_to(self, url: URL) -> bool:
        """May a request to ``url`` carry the key? Only one to the base URL's origin (the
        polling providers widen it to their own hosts: batchgen.provider.poll)."""
        return (url.scheme, url.host, url.port) == self._home

    async def _key_stays_home(
        self,
        req: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        """Every hop of every request, redirects included: aiohttp drops ``Authorization`` when
        a redirect leaves the origin, but not ``api-key`` (Azure), ``x-goog-api-key`` (Gemini)
        or ``x-key`` (Black Forest Labs); a header carrying the key goes nowhere else."""
        if not self.key_may_go_to(req.url):
            drop = self._foreign_drop
            for name in [
                name
                for name, value in req.headers.items()
                if (self._key and self._key in value) or name.lower() in drop
            ]:
                req.headers.popall(name, None)
        return await handler(req)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def redact(self, text: str) -> str:
        """``text`` without this client's key: what code outside the client may print."""
        return redact(text, (self._key,))

    def field_text(self, value: Any, limit: int = MAX_FIELD_CHARS) -> str | None:
        """Any field of an answer, as stored and printed: text, redacted, cut."""
        return provider_text(value, (self._key,), limit)

    def _id_text(self, value: str | None) -> str | None:
        """A header's id (``x-request-id``) as :meth:`field_text` cuts it to 200 characters;
        an id of letters, digits, ``_`` and ``-`` only, with no ``sk-`` and not holding the
        key, is returned as it is (none of redaction's patterns can match it), without the
        general path: this runs on every answer."""
        if (
            value is not None
            and _PLAIN_ID.fullmatch(value) is not None
            and "sk-" not in (lowered := value.lower())
            and self._key_lower not in lowered
        ):
            return value
        return self.field_text(value, 200)

    def code_text(self, value: Any) -> str | None:
        """An answer's ``error.code`` / ``status`` as a short redacted string (or None)."""
        return error_code(value, (self._key,))

    _redact = redact  # the names the protocol clients (subclasses) use
    _text = field_text

    @contextmanager
    def _transport_errors(self, on_timeout: str, where: str = "") -> Iterator[None]:
        """A timeout as ErrorClass.TIMEOUT (``on_timeout`` its message), a failed connection
        or read as ErrorClass.NETWORK (``where`` before the exception's text, redacted)."""
        try:
            yield
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._transport_error(exc, on_timeout, where) from exc

    def _transport_error(
        self, exc: BaseException, on_timeout: str, where: str = ""
    ) -> AttemptError:
        """What :meth:`_transport_errors` raises for ``exc``."""
        if isinstance(exc, TimeoutError):  # before OSError: TimeoutError is one
            return AttemptError(ErrorClass.TIMEOUT, on_timeout)
        return AttemptError(ErrorClass.NETWORK, self._redact(f"{where}{type(exc).__name__}: {exc}"))


def ratelimit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers of an answer (for the adaptive limiter), names lower case."""
    # this runs on every answer: a name is lowered only when it starts with an x (most do
    # not), and a loop, not a comprehension (one call less)
    found = {}
    for key, value in headers.items():
        if key[:1] in "xX" and (name := key.lower()).startswith(_RATELIMIT_PREFIX):
            found[name] = value
    return found


def loads(body: bytes | bytearray) -> Any:
    """orjson first (fast); the standard library for what orjson refuses but JSON allows (a
    number like 1e999, an integer beyond 64 bits). The error, returned, when neither parses."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            return exc


async def read_capped(
    resp: aiohttp.ClientResponse, limit: int, *, truncate: bool = False
) -> bytes | bytearray | None:
    """The body, decompressed, up to ``limit`` bytes. Past it: None, or with ``truncate``
    the first ``limit`` bytes. The rest is never read (the connection is dropped)."""
    length = resp.content_length
    if not truncate and (length or 0) > limit:
        return None
    if length is not None and length <= limit and "Content-Encoding" not in resp.headers:
        # the body is exactly Content-Length bytes (aiohttp stops there), none decoded: one
        # read of all of it, without the chunk loop
        return await resp.read()
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > limit:
            if truncate:
                del buf[limit:]
                break
            return None
    return buf
