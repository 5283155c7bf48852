"""Where the key may go: a polling or status URL a provider returned gets the key only on the
base URL's site by the Public Suffix List (private section included), never over a downgrade
to http, never on another port; a polling URL off the site is refused by name."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from aiohttp import web

from batchgen.errors import AttemptError, ErrorClass
from batchgen.jobs.model import Job
from batchgen.provider.bfl import BflImages
from batchgen.provider.fal import FalImages
from batchgen.provider.http import registrable_domain, same_site

KEY = "sk-sim-suffix-SECRET-0001"
POLL = 0.001  # seconds between polls: the simulator's tasks are ready at once (tiny)


@pytest.mark.parametrize(
    ("url", "base"),
    [
        # the provider's own regional hosts (BFL's api.us1 / delivery; fal's queue)
        ("https://api.us1.bfl.ai/v1/get_result?id=1", "https://api.bfl.ai/v1"),
        ("https://queue.fal.run/fal-ai/flux/requests/1/status", "https://queue.fal.run/fal-ai"),
        ("https://queue.fal.run/x", "https://fal.run"),
        # a tenant's own subdomains under a shared suffix
        ("https://eu.gw.example.co.uk/poll", "https://api.gw.example.co.uk/v1"),
        ("https://x.mine.herokuapp.com/poll", "https://mine.herokuapp.com/v1"),
        ("https://poll.myvm.eastus.cloudapp.azure.com/p", "https://myvm.eastus.cloudapp.azure.com"),
        # the same host: the written default port is the default port; case and a final dot
        ("https://api.bfl.ai:443/v1/get_result", "https://api.bfl.ai/v1"),
        ("https://API.BFL.AI./v1/get_result", "https://api.bfl.ai/v1"),
        # an upgrade to https: on the same port, or with no port written
        ("https://localhost:8000/poll", "http://localhost:8000/v1"),
        ("https://api.us1.bfl.ai/v1/get_result", "http://api.bfl.ai/v1"),
        # loopback and IP addresses: only themselves
        ("http://127.0.0.1:8000/x", "http://127.0.0.1:8000/bfl/v1"),
        ("http://localhost:8000/x", "http://localhost:8000/bfl/v1"),
        ("http://[::1]:8000/x", "http://[::1]:8000/bfl/v1"),
    ],
)
def test_the_key_goes_to_the_providers_own_site(url: str, base: str) -> None:
    assert same_site(url, base)


@pytest.mark.parametrize(
    ("url", "base"),
    [
        # other tenants of a shared suffix (ICANN's co.uk; the list's private section)
        ("https://other.co.uk/poll", "https://api.mine.co.uk/v1"),
        ("https://evil.herokuapp.com/poll", "https://mine.herokuapp.com/v1"),
        ("https://evil.ngrok.app/poll", "https://mine.ngrok.app/v1"),
        ("https://evil.azurewebsites.net/poll", "https://mine.azurewebsites.net/v1"),
        ("https://evil.eastus.cloudapp.azure.com/p", "https://mine.eastus.cloudapp.azure.com"),
        # look-alikes
        ("https://delivery-eu1.bfl.ai.evil.com/x", "https://api.bfl.ai/v1"),
        ("https://evilbfl.ai/x", "https://api.bfl.ai/v1"),
        ("https://storage.googleapis.com/x", "https://queue.fal.run"),
        # a downgrade from https to http: the key would cross the network in clear
        ("http://api.bfl.ai/v1/get_result", "https://api.bfl.ai/v1"),
        ("http://api.us1.bfl.ai/v1/get_result", "https://api.bfl.ai/v1"),
        # another port: another service (same host, or a sibling host)
        ("http://127.0.0.1:9000/x", "http://127.0.0.1:8000/bfl/v1"),
        ("https://api.bfl.ai:8443/x", "https://api.bfl.ai/v1"),
        ("https://api.us1.bfl.ai:8443/x", "https://api.bfl.ai/v1"),
        ("https://api.bfl.ai:notaport/x", "https://api.bfl.ai/v1"),
        ("https://api.bfl.ai:8000/x", "http://api.bfl.ai/v1"),
        ("https://api.bfl.ai/x", "http://api.bfl.ai:8000/v1"),
        # IP addresses and single-label names match only themselves
        ("http://127.0.0.2:8000/x", "http://127.0.0.1:8000/v1"),
        ("http://10.0.0.1:8000/x", "http://10.0.0.2:8000/v1"),
        ("http://[::2]:8000/x", "http://[::1]:8000/v1"),
        ("http://127.0.0.1:8000/x", "http://localhost:8000/v1"),
        ("http://evil.localhost:8000/x", "http://localhost:8000/v1"),
        ("http://localhost:8000/x", "http://other.localhost:8000/v1"),
        # a public suffix as the base host has no site to share
        ("https://evil.co.uk/x", "https://co.uk/v1"),
        # not http(s), or no host
        ("ftp://api.bfl.ai/x", "https://api.bfl.ai/v1"),
        ("https:///x", "https://api.bfl.ai/v1"),
        ("/v1/get_result", "https://api.bfl.ai/v1"),
    ],
)
def test_the_key_goes_nowhere_else(url: str, base: str) -> None:
    assert not same_site(url, base)


def test_registrable_domains_by_the_list() -> None:
    assert registrable_domain("api.us1.bfl.ai") == "bfl.ai"
    assert registrable_domain("a.b.example.co.uk") == "example.co.uk"
    assert registrable_domain("x.mine.ngrok.app") == "mine.ngrok.app"
    assert registrable_domain("co.uk") is None
    assert registrable_domain("herokuapp.com") is None
    assert registrable_domain("localhost") is None
    assert registrable_domain("192.168.1.10") is None
    assert registrable_domain("[::1]") is None


def _generate(provider: Any, model: str) -> Any:
    async def main() -> Any:
        try:
            job = Job.make("j1", 1, {"prompt": "a red fox", "model": model, "n": 1})
            return await provider.generate(job, timeout=10.0)
        except AttemptError as exc:
            return exc
        finally:
            await provider.aclose()

    return anyio.run(main)


def _bfl(base: str) -> BflImages:
    return BflImages(base, KEY, poll_interval_s=POLL, max_poll_interval_s=POLL)


def _fal(base: str) -> FalImages:
    return FalImages(base, KEY, poll_interval_s=POLL, max_poll_interval_s=POLL)


@pytest.mark.parametrize(
    ("make", "path", "model"), [(_bfl, "bfl/v1", "flux-pro-1.1"), (_fal, "fal", "fal-ai/flux/dev")]
)
def test_a_localhost_base_url_polls_with_the_key(
    make_sim: Any, make: Any, path: str, model: str
) -> None:
    """The simulator answers polling URLs on the host it was asked by (localhost here, not
    127.0.0.1): the same host, so the key goes, and the keyed simulator serves the image."""
    sim = make_sim(api_key=KEY)
    result = _generate(make(f"http://localhost:{sim.port}/{path}"), model)
    assert not isinstance(result, AttemptError), result
    assert len(result.images) == 1


async def _serve(app: web.Application, host: str) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


SUBMITS = {
    # a BFL submit answer whose polling_url is elsewhere
    "bfl-poll": ("bfl/v1", "flux-pro-1.1", lambda own, other: {"id": "t1", "polling_url": other}),
    # fal: the status URL elsewhere; the status URL its own but the response URL elsewhere
    "fal-status": (
        "fal",
        "fal-ai/flux/dev",
        lambda own, other: {"request_id": "t1", "status_url": other, "response_url": own},
    ),
    "fal-response": (
        "fal",
        "fal-ai/flux/dev",
        lambda own, other: {"request_id": "t1", "status_url": own, "response_url": other},
    ),
}


@pytest.mark.parametrize("case", sorted(SUBMITS))
def test_a_url_off_the_site_is_refused_by_name_before_any_request(case: str) -> None:
    """A provider's submit answer (a stand-in server: the simulator names only its own host)
    names a polling/status/response URL on another origin (127.0.0.1, the base URL being
    localhost): refused before any request goes there, final, both origins named, the key in
    no message and at no other host."""
    path, model, answer = SUBMITS[case]
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"status": "Pending"})

    async def main() -> tuple[Any, int, int]:
        other_app = web.Application()
        other_app.router.add_route("*", "/{tail:.*}", record)
        other, other_port = await _serve(other_app, "127.0.0.1")
        ports: list[int] = []

        async def submit(request: web.Request) -> web.Response:
            own = f"http://localhost:{ports[0]}/poll"
            return web.json_response(answer(own, f"http://127.0.0.1:{other_port}/poll?t=1"))

        front_app = web.Application()
        front_app.router.add_post("/{tail:.*}", submit)
        front, front_port = await _serve(front_app, "localhost")
        ports.append(front_port)
        make = _bfl if path.startswith("bfl") else _fal
        provider = make(f"http://localhost:{front_port}/{path}")
        try:
            job = Job.make("j1", 1, {"prompt": "a red fox", "model": model, "n": 1})
            try:
                return await provider.generate(job, timeout=10.0), front_port, other_port
            except AttemptError as exc:
                return exc, front_port, other_port
        finally:
            await provider.aclose()
            await front.cleanup()
            await other.cleanup()

    result, front_port, other_port = anyio.run(main)
    assert isinstance(result, AttemptError), result
    assert result.error_class is ErrorClass.INVALID_RESPONSE and result.final
    assert f"on http://127.0.0.1:{other_port}," in result.message
    assert f"(http://localhost:{front_port}:" in result.message
    assert "--base-url" in result.message and "t=1" not in result.message
    assert KEY not in result.message
    assert seen == []
