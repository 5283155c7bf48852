"""What the non-OpenAI providers (Gemini, Black Forest Labs, fal) share beyond the transport
(batchgen.provider.transport: the session, redaction, transport failures): JSON requests with
capped answers, image checks, and downloads of signed result URLs without the key.

Each provider maps its own error answers into batchgen.errors in one method, ``_error``.
"""

from __future__ import annotations

import binascii
import functools
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote_to_bytes, urlsplit

import aiohttp
import anyio
import pybase64
from publicsuffixlist import PSLFILE, PublicSuffixList
from yarl import URL

from batchgen.errors import AttemptError, ErrorClass
from batchgen.images import MAX_IMAGE_PIXELS, image_pixels, sniff_ext
from batchgen.provider.base import ImageData
from batchgen.provider.transport import (
    ERROR_READ_BYTES,
    MAX_ANSWER_BYTES,
    MAX_DOWNLOAD_BYTES,
    KeyedSession,
    loads,
    read_capped,
)

T = TypeVar("T")

__all__ = [
    "Invalid",
    "JsonHttp",
    "b64_image",
    "b64decode",
    "checked_image",
    "data_url_bytes",
    "get_public",
    "is_data_url",
    "is_private_address",
    "json_error_text",
    "registrable_domain",
    "resolve_host",
    "same_site",
]


# the statuses aiohttp follows (its own limit is 10 hops too)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10

Resolve = Callable[[str, int], Awaitable[list[str]]]


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (an IP address: itself)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_private_address(address: str) -> bool:
    """Not a global address: loopback, RFC 1918, link-local (cloud metadata at
    169.254.169.254), CGNAT, unique-local, reserved, unspecified."""
    return not ipaddress.ip_address(address.partition("%")[0]).is_global


@asynccontextmanager
async def get_public(
    client: aiohttp.ClientSession,
    url: str,
    timeout: aiohttp.ClientTimeout,
    invalid: Invalid,
    resolve: Resolve = resolve_host,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """GET ``url`` without the key, following redirects (up to :data:`MAX_REDIRECTS`) but not
    one that moves from a public host to a private address: a provider's result URL never
    needs that, and following it would let whoever answers the URL make this machine fetch
    from its own network (an SSRF). A URL that starts on a private address (a local server
    serving its own images) may redirect anywhere. Hosts are resolved only when a redirect
    comes, so a plain download costs no lookup."""
    target = URL(url)
    start_public: bool | None = None
    for _ in range(MAX_REDIRECTS + 1):
        async with client.get(target, timeout=timeout, allow_redirects=False) as resp:
            location = resp.headers.get("Location") if resp.status in _REDIRECTS else None
            if location is None:
                yield resp
                return
        if start_public is None:
            start_public = not await _private(target, resolve, invalid)
        target = resp.url.join(URL(location))
        if target.scheme not in ("http", "https") or not target.host:
            raise invalid(f"the download redirects to a URL that is not http(s): {location[:80]}")
        if start_public and await _private(target, resolve, invalid):
            msg = (
                f"refusing a redirect of the download from a public host ({resp.url.origin()}) "
                f"to a private address ({target.origin()}): a provider's result URL never "
                "needs one, and following it would fetch from this machine's own network"
            )
            raise invalid(msg)
    raise invalid(f"the download redirected more than {MAX_REDIRECTS} times")


async def _private(url: URL, resolve: Resolve, invalid: Invalid) -> bool:
    """Does ``url``'s host resolve to any private address (:func:`is_private_address`)?"""
    host = url.host or ""
    try:
        addresses = await resolve(host, url.port or 0)
    except OSError as exc:
        raise invalid(f"could not resolve {host} ({exc})", final=False) from exc
    return any(is_private_address(a) for a in addresses)


class Invalid(Protocol):
    """Makes a provider's invalid_response error: ``final`` (the default) for a delivered
    answer the client refuses, ``final=False`` for one that did not arrive whole."""

    def __call__(self, msg: str, *, final: bool = True) -> AttemptError: ...


class JsonHttp(KeyedSession):
    """Capped JSON round trips over the shared session (batchgen.provider.transport)."""

    name = "http"
    # how a redirect's host is resolved, to refuse one from a public host to a private address
    resolve: Resolve = staticmethod(resolve_host)

    def __init__(self, base_url: str, api_key: str, *, connections: int = 100) -> None:
        super().__init__(base_url, api_key, connections=connections)
        self._max_answer = MAX_ANSWER_BYTES
        self._max_download = MAX_DOWNLOAD_BYTES

    async def _request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        data: bytes | None,
        timeout: aiohttp.ClientTimeout,
    ) -> tuple[int, Mapping[str, str], bytes, str]:
        """(status, headers, body, content type); an error answer's body is cut to 64 KB, a
        200's over the answer cap is refused."""
        async with self._client().request(
            method, url, data=data, headers=headers, timeout=timeout
        ) as resp:
            if resp.status != 200:
                body = await read_capped(resp, ERROR_READ_BYTES, truncate=True)
            else:
                body = await read_capped(resp, self._max_answer)
                if body is None:  # delivered, and it would be this large again: final
                    msg = f"the 200 answer is larger than {self._max_answer} bytes: refused"
                    raise AttemptError(
                        ErrorClass.INVALID_RESPONSE, msg, http_status=200, final=True
                    )
            return resp.status, resp.headers, bytes(body or b""), resp.content_type

    async def _guarded(self, timeout: float, work: Callable[[], Awaitable[T]]) -> T:
        """Transport failures as AttemptErrors (timeout, network), redacted."""
        with self._transport_errors(f"no complete answer within --timeout {timeout:g}s"):
            return await work()

    def _json(self, body: bytes, invalid: Invalid) -> dict[str, Any]:
        payload = loads(body)
        if isinstance(payload, Exception):
            # not final: a body cut on its way, or not the provider's answer at all (a proxy's
            # page): the answer did not arrive as it was made
            msg = f"the 200 answer is not valid JSON ({payload}; {len(body)} bytes)"
            raise invalid(msg, final=False)
        if not isinstance(payload, dict):
            raise invalid("the 200 answer is not a JSON object")
        return payload

    async def _download(
        self,
        url: str,
        timeout: aiohttp.ClientTimeout,
        expired: Callable[[int], AttemptError],
        invalid: Invalid,
    ) -> bytes:
        """A signed result URL, fetched without the key, or a ``data:`` URL decoded.
        ``expired(status)`` is the error for a URL that answers 403/404/410 (signed URLs expire
        within minutes)."""
        if is_data_url(url):
            return data_url_bytes(url, "the result URL", invalid, self._max_download)
        if urlsplit(url).scheme not in ("http", "https"):
            raise invalid(f"refusing to download a result URL that is not http(s): {url[:80]}")
        try:
            async with get_public(self._client(), url, timeout, invalid, self.resolve) as resp:
                if resp.status in (403, 404, 410):
                    raise expired(resp.status)
                if resp.status != 200:
                    msg = f"the result download answered HTTP {resp.status}"
                    raise invalid(msg, final=False)
                body = await read_capped(resp, self._max_download)
                if body is None:
                    raise invalid(f"the result download is larger than {self._max_download} bytes")
                return bytes(body)
        except aiohttp.ClientError as exc:
            msg = self._redact(f"result download failed: {type(exc).__name__}: {exc}")
            raise invalid(msg, final=False) from exc


def checked_image(
    raw: bytes, where: str, invalid: Invalid, revised: str | None = None
) -> ImageData:
    """Bytes that are a PNG/JPEG/WebP/GIF and no decompression bomb, or ``invalid``."""
    ext = sniff_ext(raw)
    if ext is None:
        raise invalid(f"{where} is {len(raw)} bytes that are not a PNG/JPEG/WebP/GIF")
    pixels = image_pixels(raw, ext)
    if pixels is not None and pixels > MAX_IMAGE_PIXELS:
        raise invalid(f"{where} is a decompression bomb: its header claims {pixels:,} pixels")
    return ImageData(raw, ext, revised)


def b64_image(data: Any, where: str, invalid: Invalid) -> ImageData:
    if not isinstance(data, str) or not data:
        raise invalid(f"{where} has no base64 data")
    if is_data_url(data):  # a gateway's data: URL where the bare base64 belongs
        return checked_image(data_url_bytes(data, where, invalid), where, invalid)
    try:
        raw = b64decode(data)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise invalid(f"{where} is not valid base64 ({exc})") from exc
    return checked_image(raw, where, invalid)


def b64decode(text: Any) -> bytes:
    """Strict base64 (pybase64, SIMD) — and, only when that fails, the same text without its
    whitespace: RFC 2045 (MIME) base64 comes in lines of 76 characters ended by CRLF, as
    gateways built on Java's ``Base64.getMimeEncoder()`` or .NET's ``InsertLineBreaks`` send
    it; the image is whole, and paid for. binascii.Error / ValueError / TypeError for
    anything else."""
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        if not isinstance(text, str) or not any(c in text for c in " \t\r\n"):
            raise
    return pybase64.b64decode("".join(text.split()), validate=True)


def is_data_url(url: str) -> bool:
    return url[:5].lower() == "data:"


def data_url_bytes(url: str, where: str, invalid: Invalid, cap: int | None = None) -> bytes:
    """The bytes of a ``data:[type][;base64],DATA`` URL (RFC 2397), as fal (``sync_mode``) and
    several gateways send images; the caller checks they are an image. Malformed: ``invalid``
    (final: the answer was delivered as it is)."""
    head, comma, payload = url[5:].partition(",")
    if not comma:
        raise invalid(f"{where} is a data: URL without a comma: {url[:60]}")
    if cap is not None and len(payload) * 3 // 4 > cap:
        raise invalid(f"{where} is a data: URL larger than {cap} bytes")
    if head.lower().endswith(";base64"):
        try:
            return pybase64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise invalid(f"{where} is a data: URL whose base64 is not valid ({exc})") from exc
    return unquote_to_bytes(payload)


def same_site(url: str, base_url: str) -> bool:
    """Does ``url`` (a polling or status URL the provider returned) belong to the provider?
    Only then does the key go with it; a signed result URL never gets it. It does when it is
    http(s), not a downgrade from an https base URL to http (the key would cross the network
    in clear), on the same port (the scheme's default when none is written; http to https with
    no port written is an upgrade, allowed), and on the base URL's host or a host of the same
    registrable domain by the Public Suffix List, its private section included
    (api.us1.bfl.ai for api.bfl.ai; not other.herokuapp.com for mine.herokuapp.com, nor
    b.co.uk for a.co.uk). An IP address or a name the list holds no registrable domain for
    (localhost) matches only itself."""
    a, b = urlsplit(url), urlsplit(base_url)
    if a.scheme not in ("http", "https") or b.scheme not in ("http", "https"):
        return False
    if b.scheme == "https" and a.scheme != "https":
        return False
    try:
        a_port, b_port = a.port or _DEFAULT_PORT[a.scheme], b.port or _DEFAULT_PORT[b.scheme]
    except ValueError:  # a port that is not a number, or out of range
        return False
    a_host, b_host = (a.hostname or "").rstrip("."), (b.hostname or "").rstrip(".")
    # an upgrade to https with no port written is the same service on its https port
    upgrade = a.scheme != b.scheme and a.port is None and b.port is None
    if not a_host or not b_host or (a_port != b_port and not upgrade):
        return False
    if a_host == b_host:
        return True
    site = registrable_domain(b_host)
    return site is not None and registrable_domain(a_host) == site


_DEFAULT_PORT = {"http": 80, "https": 443}

# shared suffixes whose tenants are strangers to each other but that the Public Suffix List
# does not hold (yet): Azure's VM names, NAME.REGION.cloudapp.azure.com
_EXTRA_SUFFIXES = ("*.cloudapp.azure.com",)


@functools.cache
def _suffix_list() -> PublicSuffixList:
    """The list as publicsuffixlist bundles it (its release's snapshot: never fetched at run
    time), with :data:`_EXTRA_SUFFIXES`; parsed on first use (~25 ms), not at import."""
    with open(PSLFILE, "rb") as f:
        lines = [*f, *(s.encode() for s in _EXTRA_SUFFIXES)]
    return PublicSuffixList(lines)


@functools.lru_cache(maxsize=1024)  # a run meets a few hosts, on every poll
def registrable_domain(host: str) -> str | None:
    """``host``'s registrable domain (eTLD+1: bfl.ai for api.us1.bfl.ai, mine.herokuapp.com
    for x.mine.herokuapp.com), or None for an IP address, a public suffix itself, or a
    single-label name (localhost)."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    if "." not in host:
        return None
    return _suffix_list().privatesuffix(host)


def json_error_text(body: bytes) -> tuple[dict[str, Any], str]:
    """An error answer's JSON object (or {}) and a short text of it."""
    payload = loads(body)
    if isinstance(payload, dict):
        return payload, body[:500].decode("utf-8", "replace")
    return {}, body[:200].decode("utf-8", "replace")
