"""Submit-then-poll providers (Black Forest Labs, fal's queue): submit, poll the URL the
provider returned until the result is ready, then download the image from the signed URL it
gives. The whole of it is one attempt: the job is in flight (the sent journal, the limiter's
slot) from the submit to the end of the download, and ``--timeout`` bounds all of it.

Subclasses say how to submit, how to read a poll answer, how to fetch the result, and map
their errors into the taxonomy in one method, ``_error``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import anyio
import orjson
from yarl import URL

from batchgen.errors import AttemptError, ErrorClass
from batchgen.jobs.model import Job
from batchgen.provider.base import GenerateResult
from batchgen.provider.http import JsonHttp, same_site
from batchgen.provider.transport import ratelimit_headers

DEFAULT_POLL_S = 0.5
MAX_POLL_S = 5.0


@dataclass(frozen=True, slots=True)
class Poll:
    """One poll answer, read: done (with what the result step needs), pending, or an error."""

    done: bool = False
    result: Any = None
    error: AttemptError | None = None


class PollingProvider(JsonHttp):
    key_header = "x-key"
    key_prefix = ""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connections: int = 100,
        poll_interval_s: float = DEFAULT_POLL_S,
        max_poll_interval_s: float = MAX_POLL_S,
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    ) -> None:
        super().__init__(base_url, api_key, connections=connections)
        self.poll_interval_s = poll_interval_s
        self.max_poll_interval_s = max(poll_interval_s, max_poll_interval_s)
        self._sleep = sleep
        self._auth = {self.key_header: f"{self.key_prefix}{api_key}"}
        self._json_headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "batchgen",
        }

    def key_may_go_to(self, url: URL) -> bool:
        """The provider's own hosts (:func:`same_site`), as :meth:`headers_for` decides."""
        return same_site(str(url), self.base_url)

    def headers_for(self, url: str) -> dict[str, str]:
        """The key goes only to the provider's own hosts, never to a result URL elsewhere."""
        if same_site(url, self.base_url):
            return {**self._json_headers, **self._auth}
        return dict(self._json_headers)

    def own_url(self, url: str, what: str, invalid: Any) -> None:
        """A URL the provider returned to be fetched with the key (a polling or status URL)
        that is not its own (:func:`same_site`) is refused here, by name: sent without the key
        it could only answer 401/403, read as a bad key; sent with it, the key would go to a
        stranger (another tenant of a shared suffix) or over plain http."""
        if not same_site(url, self.base_url):
            mine, base = _origin(url), _origin(self.base_url)
            msg = (
                f"{what} the provider returned, on {mine}, is not on the base URL's site "
                f"({base}: the same host and port, or a host of its "
                "registrable domain, and https when it is https): the key is not sent there. "
                "If this host is the provider's, make it the base URL (--base-url)"
            )
            raise invalid(msg)

    # -- what a subclass says -----------------------------------------------------------------
    def submit_request(self, job: Job) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def read_submit(self, payload: dict[str, Any], invalid: Any) -> tuple[str, str | None, Any]:
        """(polling URL, request id, what the result step needs besides the poll)."""
        raise NotImplementedError

    def read_poll(self, payload: dict[str, Any], invalid: Any, request_id: str | None) -> Poll:
        raise NotImplementedError

    async def fetch_result(
        self,
        job: Job,
        ticket: Any,
        poll: Poll,
        timeout: aiohttp.ClientTimeout,
        invalid: Any,
        request_id: str | None,
    ) -> GenerateResult:
        raise NotImplementedError

    def _error(self, status: int, body: bytes, headers: Any, ctype: str, step: str) -> AttemptError:
        raise NotImplementedError

    # -- the loop ----------------------------------------------------------------------------
    async def generate(self, job: Job, *, timeout: float) -> GenerateResult:
        deadline = anyio.current_time() + timeout

        def left() -> aiohttp.ClientTimeout:
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                raise TimeoutError
            return aiohttp.ClientTimeout(total=remaining)

        async def work() -> GenerateResult:
            url, body = self.submit_request(job)
            status, headers, raw, ctype = await self._request(
                "POST",
                url,
                headers=self.headers_for(url),
                data=orjson.dumps(body),
                timeout=left(),
            )
            if status not in (200, 201, 202):
                raise self._error(status, raw, headers, ctype, "submit")
            ratelimit = ratelimit_headers(headers)
            request_id: list[str | None] = [None]

            def invalid(msg: str, *, final: bool = True) -> AttemptError:
                return AttemptError(
                    ErrorClass.INVALID_RESPONSE,
                    self._redact(msg),
                    http_status=200,
                    request_id=request_id[0],
                    ratelimit=ratelimit,
                    final=final,
                )

            poll_url, request_id[0], ticket = self.read_submit(self._json(raw, invalid), invalid)
            poll_url = str(poll_url)
            self.own_url(poll_url, "the polling URL", invalid)
            interval = self.poll_interval_s
            while True:
                await self._sleep(min(interval, max(0.0, deadline - anyio.current_time())))
                status, headers, raw, ctype = await self._request(
                    "GET",
                    poll_url,
                    headers=self.headers_for(poll_url),
                    data=None,
                    timeout=left(),
                )
                if status not in (200, 202):  # fal answers 202 while the job is queued
                    error = self._error(status, raw, headers, ctype, "poll")
                    error.request_id = error.request_id or request_id[0]
                    raise error
                poll = self.read_poll(self._json(raw, invalid), invalid, request_id[0])
                if poll.error is not None:
                    poll.error.request_id = poll.error.request_id or request_id[0]
                    raise poll.error
                if poll.done:
                    break
                interval = min(interval * 1.5, self.max_poll_interval_s)
            result = await self.fetch_result(job, ticket, poll, left(), invalid, request_id[0])
            if ratelimit and not result.ratelimit:
                result = GenerateResult(
                    result.images,
                    result.usage,
                    result.request_id,
                    ratelimit=ratelimit,
                    note=result.note,
                )
            return result

        return await self._guarded(timeout, work)

    def expired(self, request_id: str | None) -> Callable[[int], AttemptError]:
        def make(status: int) -> AttemptError:
            msg = (
                f"the signed result URL answered HTTP {status}: it expired before the download "
                "(signed URLs live minutes); the image was made and is sent again"
            )
            return AttemptError(
                ErrorClass.INVALID_RESPONSE,
                msg,
                http_status=status,
                code="result_url_expired",
                request_id=request_id,
            )

        return make


def _origin(url: str) -> str:
    """scheme://host[:port] of ``url``, without its path, query or user info (a signed URL's
    token stays out of the message)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")
