"""``--providers providers.toml``: the endpoints of a run, each with its protocol, base URL,
the *name* of the environment variable holding its key, and the models it serves.

    [[endpoint]]
    name = "openai-a"
    protocol = "openai"          # openai | azure | gemini | bfl | fal
    base_url = "https://api.openai.com/v1"
    key_env = "OPENAI_KEY_A"     # the variable's name — never the key
    models = ["gpt-image-1", "gpt-image-1-mini"]
    # optional: rpm, ipm, concurrency (caps for this endpoint's autopilot),
    # deployments = {"gpt-image-1" = "my-dep"} and api_version (azure),
    # poll_interval (bfl, fal: seconds between polls, default 0.5)

What run.json records of it (:func:`describe`) holds no key: names, protocols, base URLs
(a URL with a password is refused), variable names and models. Building the parser must
stay cheap: this module imports no aiohttp until :func:`build_router` runs.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from batchgen.config import PoolConfig
from batchgen.errors import UsageError, redact
from batchgen.session.connect import SIM_KEY, is_loopback

PROTOCOLS = ("openai", "azure", "gemini", "bfl", "fal")
DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "bfl": "https://api.bfl.ai/v1",
    "fal": "https://queue.fal.run",
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_KEYS = frozenset({"name", "protocol", "base_url", "key_env", "models", "rpm", "ipm",
                   "concurrency", "deployments", "api_version", "poll_interval"})  # fmt: skip


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
            "name": self.name, "protocol": self.protocol, "base_url": redact(self.base_url),
            "key_env": self.key_env, "models": list(self.models),
        }  # fmt: skip
        for key in ("rpm", "ipm", "concurrency", "api_version", "poll_interval"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.deployments:
            out["deployments"] = dict(self.deployments)
        return out


def load_providers(path: str | Path) -> list[EndpointSpec]:
    """The endpoints of a providers file, checked; UsageError naming the fix otherwise."""
    where = str(path)
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--providers {where}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--providers {where}: not valid TOML ({exc})") from exc
    tables = doc.get("endpoint")
    if not isinstance(tables, list) or not tables:
        raise UsageError(f"--providers {where}: no [[endpoint]] tables (see README: Providers)")
    return from_records(tables, where)


def from_records(tables: list[Any], where: str = "run.json") -> list[EndpointSpec]:
    specs: list[EndpointSpec] = []
    for i, table in enumerate(tables, 1):
        if not isinstance(table, dict):
            raise UsageError(f"{where}: endpoint #{i} is not a table")
        specs.append(_spec(table, f"{where}: endpoint #{i}"))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"{where}: endpoint names must be unique; repeated: {', '.join(dupes)}")
    return specs


def _spec(t: dict[str, Any], where: str) -> EndpointSpec:
    def fail(msg: str) -> UsageError:
        return UsageError(f"{where}: {msg}")

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
    url = t.get("base_url") or DEFAULT_URLS.get(protocol)
    if not isinstance(url, str) or not url:
        raise fail('an azure endpoint needs base_url = "https://RESOURCE.openai.azure.com/openai"')
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise fail(f"base_url {redact(url)!r} is not an http(s) URL")
    if parts.password is not None:
        raise fail(f"base_url {redact(url)} carries a password: drop `user:password@` (the key "
                   "goes in the variable named by key_env)")  # fmt: skip
    key_env = t.get("key_env")
    if not isinstance(key_env, str) or not _ENV_NAME.fullmatch(key_env):
        # never echo the value: someone may have pasted the key itself here
        raise fail('key_env must name an environment variable (key_env = "OPENAI_KEY_A"), '
                   "not hold the key")  # fmt: skip
    models = t.get("models")
    if (not isinstance(models, list) or not models
            or not all(isinstance(m, str) and m.strip() for m in models)):  # fmt: skip
        raise fail('models must be a non-empty list of model names (models = ["gpt-image-1"])')
    deployments = t.get("deployments") or {}
    if not isinstance(deployments, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in deployments.items()
    ):
        raise fail('deployments must map model names to deployment names ({"gpt-image-1" = "dep"})')
    return EndpointSpec(
        name=name, protocol=protocol, base_url=url.rstrip("/"), key_env=key_env,
        models=tuple(models), rpm=_positive(t, "rpm", fail), ipm=_positive(t, "ipm", fail),
        concurrency=_count(t, fail), deployments=dict(deployments),
        api_version=t.get("api_version") if isinstance(t.get("api_version"), str) else None,
        poll_interval=_positive(t, "poll_interval", fail),
    )  # fmt: skip


def _positive(t: dict[str, Any], key: str, fail: Any) -> float | None:
    value = t.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise fail(f"{key} must be a number > 0, got {value!r}")
    return float(value)


def _count(t: dict[str, Any], fail: Any) -> int | None:
    value = t.get("concurrency")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(f"concurrency must be a whole number >= 1, got {value!r}")
    return value


def resolve_keys(specs: list[EndpointSpec]) -> dict[str, str]:
    """Each endpoint's key from its variable (a loopback server may need none)."""
    keys: dict[str, str] = {}
    for spec in specs:
        key = os.environ.get(spec.key_env, "")
        if not key:
            if not is_loopback(urlsplit(spec.base_url).hostname or ""):
                msg = (f"endpoint {spec.name}: no API key: ${spec.key_env} is not set "
                       f"(export {spec.key_env}=...)")  # fmt: skip
                raise UsageError(msg)
            key = SIM_KEY
        keys[spec.name] = key
    return keys


def unserved(specs: list[EndpointSpec], models: set[str]) -> list[str]:
    served = {m for s in specs for m in s.models}
    return sorted(m for m in models if m not in served)


def describe(specs: list[EndpointSpec]) -> list[dict[str, Any]]:
    return [s.record() for s in specs]


def build_router(specs: list[EndpointSpec], keys: dict[str, str], values: Any, control: Any) -> Any:
    """The Router over these endpoints: a provider and a RateLimiter (its own autopilot)
    each; the run's --rpm/--ipm/--concurrency apply to every endpoint unless it sets its own.
    ``values``: the run's PoolConfig (or a mapping of its settings)."""
    from batchgen.limits import RateLimiter
    from batchgen.provider.router import Endpoint, Router

    endpoints = []
    pool = values if isinstance(values, PoolConfig) else PoolConfig.build(None, values)
    for spec in specs:
        limiter = RateLimiter(
            spec.rpm or pool.rpm, spec.ipm or pool.ipm,
            concurrency=spec.concurrency or pool.concurrency, adapt=pool.adaptive,
            max_pause_s=pool.max_pause_s,
        )  # fmt: skip
        connections = limiter.concurrency_cap + 4
        endpoints.append(Endpoint(spec.name, spec.protocol,
                                  make_provider(spec, keys[spec.name], connections),
                                  limiter, frozenset(spec.models)))  # fmt: skip
    return Router(endpoints, control)


def make_provider(spec: EndpointSpec, key: str, connections: int = 100) -> Any:
    if spec.protocol == "openai":
        from batchgen.provider.openai import OpenAIImages

        return OpenAIImages(spec.base_url, key, connections=connections)
    if spec.protocol == "azure":
        from batchgen.provider.azure import DEFAULT_API_VERSION, AzureImages

        return AzureImages(spec.base_url, key, deployments=spec.deployments,
                           api_version=spec.api_version or DEFAULT_API_VERSION,
                           connections=connections)  # fmt: skip
    if spec.protocol == "gemini":
        from batchgen.provider.gemini import GeminiImages

        return GeminiImages(spec.base_url, key, connections=connections)
    poll: dict[str, Any] = {"poll_interval_s": spec.poll_interval} if spec.poll_interval else {}
    if spec.protocol == "bfl":
        from batchgen.provider.bfl import BflImages

        return BflImages(spec.base_url, key, connections=connections, **poll)
    from batchgen.provider.fal import FalImages

    return FalImages(spec.base_url, key, connections=connections, **poll)
