"""An image URL's download follows redirects, but not one that moves from a public host to a
private address (SSRF); a local server's URLs (private from the start) still work. Against the
simulator: one simulator holds the image, another answers 307 to it (``redirect_to``). Both
are on loopback, so the one thing not real here is a public address: the test's resolver says
the first host (``localhost``) is one."""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
import pytest

from batchgen.errors import AttemptError, ErrorClass
from batchgen.provider.bfl import BflImages
from batchgen.provider.http import is_private_address, resolve_host
from batchgen.provider.openai import OpenAIImages

KEY = "sk-sim-redirect-SECRET-0001"
PUBLIC = "1.1.1.1"  # a global address, as a public provider's CDN resolves to


def image_url(sim: Any) -> str:
    """A dall-e-3 ``url`` answer of the simulator: its image, held at 127.0.0.1:PORT."""

    async def main() -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{sim.base_url}/images/generations",
                json={"model": "dall-e-3", "prompt": "a fox", "response_format": "url"},
                headers={"Authorization": f"Bearer {KEY}"},
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()
            return str((await resp.json())["data"][0]["url"])

    return anyio.run(main)


async def localhost_is_public(host: str, port: int) -> list[str]:
    return [PUBLIC] if host == "localhost" else await resolve_host(host, port)


def download(provider: Any, url: str) -> Any:
    def invalid(msg: str, *, final: bool = True) -> AttemptError:
        return AttemptError(ErrorClass.INVALID_RESPONSE, msg, final=final)

    async def main() -> Any:
        try:
            args: list[Any] = [url, aiohttp.ClientTimeout(total=10)]
            if isinstance(provider, BflImages):
                args.append(lambda status: invalid(f"expired {status}"))
            return await provider._download(*args, invalid)
        except AttemptError as exc:
            return exc
        finally:
            await provider.aclose()

    return anyio.run(main)


def providers(root: str) -> list[Any]:
    return [OpenAIImages(f"{root}/v1", KEY), BflImages(f"{root}/bfl/v1", KEY)]


@pytest.mark.parametrize("which", [0, 1], ids=["openai", "bfl-result"])
def test_a_redirect_from_a_public_host_to_a_private_address_is_refused(
    make_sim: Any, which: int
) -> None:
    holder = make_sim()
    mover = make_sim(redirect_to=holder.root_url)
    url = image_url(holder)
    moved = url.replace(holder.root_url, f"http://localhost:{mover.port}")
    provider = providers(mover.root_url)[which]
    provider.resolve = localhost_is_public
    result = download(provider, moved)
    assert isinstance(result, AttemptError), result
    assert result.error_class is ErrorClass.INVALID_RESPONSE and result.final
    assert "from a public host" in result.message
    assert f"(http://127.0.0.1:{holder.port})" in result.message


@pytest.mark.parametrize("which", [0, 1], ids=["openai", "bfl-result"])
def test_a_local_servers_redirects_are_followed(make_sim: Any, which: int) -> None:
    """localhost → 127.0.0.1 (both private, as they are): the image comes, whole."""
    holder = make_sim()
    mover = make_sim(redirect_to=holder.root_url)
    url = image_url(holder)
    moved = url.replace(holder.root_url, f"http://localhost:{mover.port}")
    direct = download(providers(holder.root_url)[which], url)
    result = download(providers(mover.root_url)[which], moved)
    assert isinstance(result, bytes) and result[:8] == b"\x89PNG\r\n\x1a\n", result
    assert result == direct


def test_a_public_to_public_redirect_is_followed(make_sim: Any) -> None:
    """Both hosts public by the resolver: a CDN's redirect to another CDN is followed."""
    holder = make_sim()
    mover = make_sim(redirect_to=holder.root_url.replace("127.0.0.1", "localhost"))
    url = image_url(holder)
    moved = url.replace(holder.root_url, f"http://localhost:{mover.port}")
    provider = OpenAIImages(f"{mover.root_url}/v1", KEY)
    provider.resolve = localhost_is_public
    result = download(provider, moved)
    assert isinstance(result, bytes) and result[:4] == b"\x89PNG", result


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("192.168.0.5", True),
        ("169.254.169.254", True),  # cloud metadata
        ("100.64.0.1", True),  # CGNAT
        ("::1", True),
        ("fd00::1", True),
        ("fe80::1%eth0", True),
        ("0.0.0.0", True),
        ("1.1.1.1", False),
        ("2606:4700:4700::1111", False),
    ],
)
def test_private_addresses(address: str, private: bool) -> None:
    assert is_private_address(address) is private
