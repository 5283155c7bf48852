"""A run's endpoints (``--providers providers.toml``): each with its protocol, base URL, the
*name* of the environment variable holding its key, and the models it serves.

    [[endpoint]]
    name = "openai-a"
    protocol = "openai"          # openai | azure | gemini | bfl | fal
    base_url = "https://api.openai.com/v1"
    key_env = "OPENAI_KEY_A"     # the variable's name — never the key
    models = ["gpt-image-1", "gpt-image-1-mini"]
    # optional: rpm, ipm, concurrency (caps for this endpoint's autopilot),
    # deployments = {"gpt-image-1" = "my-dep"} or deployment = "my-dep" (every model of the
    # endpoint), and api_version (azure),
    # poll_interval (bfl, fal: seconds between polls, default 0.5)

What run.json records of it (:meth:`EndpointSpec.record`) holds no key: names, protocols,
base URLs (a URL with a password is refused), variable names and models. Problems raise
:class:`EndpointError` naming the fix (and never echoing a value that may be a key). It
imports every protocol's client at its top: only command bodies import it (a run, a resume,
doctor), and each of those loads aiohttp anyway; the parser does not (tests/test_startup.py).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from batchgen.config import PoolConfig
from batchgen.errors import UsageError, redact
from batchgen.limits import RateLimiter
from batchgen.provider.azure import DEFAULT_API_VERSION, AzureImages
from batchgen.provider.bfl import BflImages
from batchgen.provider.fal import FalImages
from batchgen.provider.gemini import GeminiImages
from batchgen.provider.openai import OpenAIImages
from batchgen.provider.poll import DEFAULT_POLL_S
from batchgen.provider.router import Endpoint, Router
from batchgen.redaction import has_hidden_query, looks_like_key, redact_url

if TYPE_CHECKING:
    from batchgen.limits.stop import RunControl
    from batchgen.provider.base import Provider

PROTOCOLS = ("openai", "azure", "gemini", "bfl", "fal")
DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "bfl": "https://api.bfl.ai/v1",
    "fal": "https://queue.fal.run",
}
LOCAL_KEY = "sk-sim-local"  # the key sent to a loopback server when none is set
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_KEYS = frozenset(
    {
        "name",
        "protocol",
        "base_url",
        "key_env",
        "models",
        "rpm",
        "ipm",
        "concurrency",
        "deployments",
        "deployment",
        "api_version",
        "poll_interval",
    }
)


class EndpointError(UsageError):
    """A providers file or an endpoint record that cannot be used; the message names the fix
    (a usage error: nothing was sent)."""


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    name: str
    protocol: str
    base_url: str
    key_env: str
    models: tuple[str, ...]
    rpm: float | None = None
    ipm: float | None = None
    concurrency: int | None = None
    deployments: dict[str, str] = field(default_factory=dict)
    api_version: str | None = None
    poll_interval: float | None = None

    def record(self) -> dict[str, Any]:
        """For run.json and the report: everything but the key (never held here anyway)."""
        out: dict[str, Any] = {
            "name": self.name,
            "protocol": self.protocol,
            "base_url": redact_url(self.base_url),
            "key_env": self.key_env,
            "models": list(self.models),
        }
        for key in ("rpm", "ipm", "concurrency", "api_version", "poll_interval"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.deployments:
            out["deployments"] = dict(self.deployments)
        return out


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def load_providers(path: str | Path) -> list[EndpointSpec]:
    """The endpoints of a providers file, checked; EndpointError naming the fix otherwise."""
    where = str(path)
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise EndpointError(f"--providers {where}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EndpointError(f"--providers {where}: not valid TOML ({exc})") from exc
    tables = doc.get("endpoint")
    if not isinstance(tables, list) or not tables:
        raise EndpointError(f"--providers {where}: no [[endpoint]] tables (see docs/providers.md)")
    return from_records(tables, where)


def from_records(tables: list[Any], where: str = "run.json") -> list[EndpointSpec]:
    """Endpoints from their tables (a providers file's, or the records run.json keeps)."""
    specs: list[EndpointSpec] = []
    for i, table in enumerate(tables, 1):
        if not isinstance(table, dict):
            raise EndpointError(f"{where}: endpoint #{i} is not a table")
        specs.append(_spec(table, f"{where}: endpoint #{i}"))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EndpointError(f"{where}: endpoint names must be unique; repeated: {', '.join(dupes)}")
    return specs


_Fail = Callable[[str], EndpointError]


def _spec(t: dict[str, Any], where: str) -> EndpointSpec:
    def fail(msg: str) -> EndpointError:
        return EndpointError(f"{where}: {msg}")

    unknown = sorted(set(t) - _KEYS)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    name = t.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise fail('needs name = "..." (letters, digits, . _ -)')
    where = f"{where} ({name})"
    protocol = t.get("protocol", "openai")
    if protocol not in PROTOCOLS:
        raise fail(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    url = _base_url(t, protocol, fail)
    key_env = t.get("key_env")
    if not isinstance(key_env, str) or not _ENV_NAME.fullmatch(key_env):
        # never echo the value: someone may have pasted the key itself here
        raise fail(
            'key_env must name an environment variable (key_env = "OPENAI_KEY_A"), not hold the key'
        )
    return EndpointSpec(
        name=name,
        protocol=protocol,
        base_url=url.rstrip("/"),
        key_env=key_env,
        models=_models(t, fail),
        rpm=_positive(t, "rpm", fail),
        ipm=_positive(t, "ipm", fail),
        concurrency=_count(t, fail),
        deployments=_deployments(t, fail),
        api_version=t.get("api_version") if isinstance(t.get("api_version"), str) else None,
        poll_interval=_positive(t, "poll_interval", fail),
    )


def _base_url(t: dict[str, Any], protocol: str, fail: _Fail) -> str:
    url = t.get("base_url") or DEFAULT_URLS.get(protocol)
    if not isinstance(url, str) or not url:
        raise fail('an azure endpoint needs base_url = "https://RESOURCE.openai.azure.com/openai"')
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise fail(f"base_url {redact(url)!r} is not an http(s) URL")
    if parts.password is not None:
        raise fail(
            f"base_url {redact(url)} carries a password: drop `user:password@` (the key "
            "goes in the variable named by key_env)"
        )
    if parts.username is not None:
        # aiohttp cannot send both the URL's credentials and the key's Authorization header
        raise fail(
            f"base_url {redact(url)} carries credentials before `@`: drop them (a "
            "gateway's token goes in the variable named by key_env)"
        )
    if has_hidden_query(url):
        raise fail(
            f"base_url {url} lost its query values: run.json keeps none (they may be "
            "secrets); give the providers file again with --providers FILE"
        )
    return url


def _models(t: dict[str, Any], fail: _Fail) -> tuple[str, ...]:
    models = t.get("models")
    if (
        not isinstance(models, list)
        or not models
        or not all(isinstance(m, str) and m.strip() for m in models)
    ):
        raise fail('models must be a non-empty list of model names (models = ["gpt-image-1"])')
    return tuple(models)


def _deployments(t: dict[str, Any], fail: _Fail) -> dict[str, str]:
    one = t.get("deployment")
    if one is not None:
        # a one-deployment endpoint (Azure's usual): every model it lists goes there
        if t.get("deployments"):
            raise fail('give deployment = "name" or deployments = {model = "name"}, not both')
        if not isinstance(one, str) or not one.strip():
            raise fail('deployment must be a deployment name (deployment = "my-dep")')
        return dict.fromkeys(_models(t, fail), one)
    deployments = t.get("deployments") or {}
    if not isinstance(deployments, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in deployments.items()
    ):
        raise fail('deployments must map model names to deployment names ({"gpt-image-1" = "dep"})')
    return dict(deployments)


def _positive(t: dict[str, Any], key: str, fail: _Fail) -> float | None:
    value = t.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise fail(f"{key} must be a number > 0, got {value!r}")
    return float(value)


def _count(t: dict[str, Any], fail: _Fail) -> int | None:
    value = t.get("concurrency")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(f"concurrency must be a whole number >= 1, got {value!r}")
    return value


def resolve_keys(
    specs: list[EndpointSpec], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each endpoint's key from its variable (a loopback server may need none)."""
    env = os.environ if environ is None else environ
    keys: dict[str, str] = {}
    for spec in specs:
        key = env.get(spec.key_env, "")
        if not key:
            if not is_loopback(urlsplit(spec.base_url).hostname or ""):
                raise EndpointError(f"endpoint {spec.name}: {no_key_message(spec.key_env)}")
            key = LOCAL_KEY
        keys[spec.name] = key
    return keys


def no_key_message(key_env: str, flag: str = "key_env") -> str:
    """Why there is no key, never echoing a key pasted where the variable's name belongs."""
    if looks_like_key(key_env):
        return (
            f"no API key: the variable named in {flag} looks like a key itself; put the "
            f'variable\'s NAME there ({flag} = "OPENAI_API_KEY") and the key in that variable'
        )
    return f"no API key: ${key_env} is not set (export {key_env}=...)"


def unserved(specs: list[EndpointSpec], models: set[str]) -> list[str]:
    """The models no endpoint serves, sorted."""
    served = {m for s in specs for m in s.models}
    return sorted(m for m in models if m not in served)


def describe(specs: list[EndpointSpec]) -> list[dict[str, Any]]:
    """What run.json records of the endpoints (no key)."""
    return [s.record() for s in specs]


def limiter_for(pool: PoolConfig) -> RateLimiter:
    """The one way a run's RateLimiter is built from its settings: the run's own (one
    endpoint), or each endpoint's of a providers file (``pool.with_limits`` of its own)."""
    return RateLimiter(
        pool.rpm,
        pool.ipm,
        concurrency=pool.concurrency,
        adapt=pool.adaptive,
        max_pause_s=pool.max_pause_s,
    )


def build_router(
    specs: list[EndpointSpec],
    keys: dict[str, str],
    pool: PoolConfig,
    control: RunControl | None,
    inflight: set[str] | None = None,
) -> Router:
    """The Router over these endpoints: a provider and a RateLimiter (its own autopilot)
    each; the run's --rpm/--ipm/--concurrency apply to every endpoint unless it sets its own.
    ``inflight``: the pool's sent journal, which the Router fills as requests leave."""
    endpoints = []
    for spec in specs:
        own = pool.with_limits(rpm=spec.rpm, ipm=spec.ipm, concurrency=spec.concurrency)
        limiter = limiter_for(own)
        provider = make_provider(spec, keys[spec.name], limiter.concurrency_cap + 4)
        endpoints.append(
            Endpoint(spec.name, spec.protocol, provider, limiter, frozenset(spec.models))
        )
    return Router(endpoints, control, inflight)


def make_provider(spec: EndpointSpec, key: str, connections: int = 100) -> Provider:
    """The provider client of ``spec``'s protocol."""
    if spec.protocol == "openai":
        return OpenAIImages(spec.base_url, key, connections=connections)
    if spec.protocol == "azure":
        return AzureImages(
            spec.base_url,
            key,
            deployments=spec.deployments,
            api_version=spec.api_version or DEFAULT_API_VERSION,
            connections=connections,
        )
    if spec.protocol == "gemini":
        return GeminiImages(spec.base_url, key, connections=connections)
    poll = spec.poll_interval or DEFAULT_POLL_S
    if spec.protocol == "bfl":
        return BflImages(spec.base_url, key, connections=connections, poll_interval_s=poll)

    return FalImages(spec.base_url, key, connections=connections, poll_interval_s=poll)
