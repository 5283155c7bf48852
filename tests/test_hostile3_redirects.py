"""Round three: a provider (or a gateway in front of it) that answers a redirect to another
host. aiohttp follows it and drops ``Authorization`` on the way, but not the headers Azure
(``api-key``), Gemini (``x-goog-api-key``) and Black Forest Labs (``x-key``) carry the key in:
without care the key goes to whatever host the redirect names.

Real HTTP: simulator A answers every API request 307 to simulator B (``redirect_to``); B
requires the key, so B answering 200 means B was handed it.
"""

from __future__ import annotations

from typing import Any

import pytest

from batchgen.errors import AttemptError, ErrorClass
from tests.test_providers import KEY, PROTOCOLS, generate


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_redirect_to_another_host_never_carries_the_key(make_sim: Any, protocol: str) -> None:
    foreign = make_sim(api_key=KEY)
    moved = make_sim(redirect_to=foreign.root_url)
    result = generate(protocol, moved, "a red fox")
    # the redirect was followed (the other host may be the provider's), and whatever reached
    # the other host came without the key: refused as unauthorized, nothing else
    outcomes = dict(foreign.stats.outcomes)
    assert set(outcomes) == {"unauthorized"}, outcomes
    assert isinstance(result, AttemptError), result
    assert result.error_class is ErrorClass.AUTH  # the other host saw no key
    assert KEY not in str(result)
    assert moved.stats["ok"] == 0
