"""Where requests go and with which key: one endpoint (``provider``, ``base_url``,
``api_key_env`` or the API's ``api_key``) or the endpoints of a providers file. The key is read
here, used by the provider and never written anywhere."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from batchgen.errors import UsageError, redact
from batchgen.provider.base import DEFAULT_BASE_URL
from batchgen.provider.endpoints import (
    LOCAL_KEY,
    from_records,
    is_loopback,
    load_providers,
    no_key_message,
    resolve_keys,
)
from batchgen.redaction import has_hidden_query, looks_like_key

if TYPE_CHECKING:
    from batchgen.config import RunConfig
    from batchgen.simconfig import SimConfig


@dataclass(frozen=True, slots=True)
class Connection:
    provider: str  # "openai" | "sim" | "providers"
    base_url: str | None  # None for sim until it is started
    key_env: str
    api_key: str  # never written anywhere

    def __repr__(self) -> str:  # the key stays out of tracebacks and logs
        return f"Connection({self.provider!r}, {redact(str(self.base_url))!r}, {self.key_env!r})"


def connect(cfg: RunConfig) -> tuple[Connection, list[Any] | None]:
    """The run's connection, and its endpoints when it has a providers file (or run.json
    recorded one); raises UsageError with the fix."""
    routed = providers_connection(cfg)
    if routed is not None:
        return routed
    return resolve_connection(cfg.provider, cfg.base_url, cfg.api_key_env, cfg.api_key), None


def providers_connection(cfg: RunConfig) -> tuple[Connection, list[Any]] | None:
    """``--providers FILE`` (or the endpoints run.json recorded): the endpoints, their keys
    checked; None when the run has one endpoint (the --provider/--base-url flags)."""

    if cfg.providers:
        if cfg.given.get("provider") or cfg.given.get("base_url") or cfg.given.get("api_key_env"):
            msg = "--providers names every endpoint: drop --provider/--base-url/--api-key-env"
            raise UsageError(msg)
        specs = load_providers(cfg.providers)
    elif cfg.recorded_endpoints and not (cfg.given.get("provider") or cfg.given.get("base_url")):
        specs = from_records(cfg.recorded_endpoints)
    else:
        return None
    resolve_keys(specs)
    return Connection("providers", None, "", ""), specs


def resolve_connection(
    provider: str | None, base_url: str | None, key_env: str | None, api_key: str | None = None
) -> Connection:
    """Where requests go and with which key; raises UsageError with the fix. ``api_key``
    (the Python API's) is used as given instead of an environment variable."""
    provider = provider or "openai"
    key_env = key_env or "OPENAI_API_KEY"
    if provider == "sim":
        return Connection("sim", None, key_env, api_key or os.environ.get(key_env) or LOCAL_KEY)
    url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        msg = f"--base-url {redact(url)!r} is not an http(s) URL (e.g. https://api.openai.com/v1)"
        raise UsageError(msg)
    if parts.password is not None:
        # aiohttp would refuse every request (one Authorization header cannot carry both), and
        # the password would be one more secret to keep out of run.json and the log
        msg = (
            f"--base-url {redact(url)} carries a password: batchgen sends the API key as the "
            "Authorization header, which cannot also carry the URL's user:password. Drop "
            f"`user:password@` from the URL (a gateway's token goes in ${key_env})"
        )
        raise UsageError(msg)
    if parts.username is not None:
        # aiohttp cannot send both the URL's credentials and the key's Authorization header
        msg = (
            f"--base-url {redact(url)} carries credentials before `@`: batchgen sends the key "
            "as the Authorization header. Drop them from the URL (a gateway's token goes in "
            "the variable named by --api-key-env)"
        )
        raise UsageError(msg)
    if has_hidden_query(url):
        msg = (
            f"the base URL {url} lost its query values: run.json keeps none (they may be "
            "secrets). Give it again with --base-url URL"
        )
        raise UsageError(msg)
    key = api_key or os.environ.get(key_env, "")
    if not key:
        if is_loopback(parts.hostname or ""):
            key = LOCAL_KEY  # a local server (the simulator, a local gateway) may need none
        else:
            if looks_like_key(key_env):
                raise UsageError(no_key_message(key_env, "--api-key-env"))
            msg = (
                f"no API key: ${key_env} is not set. Export it (export {key_env}=sk-...), name "
                "another variable with --api-key-env NAME, or try the simulator with "
                "--provider sim"
            )
            raise UsageError(msg)
    return Connection("openai", url, key_env, key)


def sim_config(cfg: RunConfig, connection: Connection | None = None) -> SimConfig | None:
    """The built-in simulator's settings (checked when the RunConfig was built); None unless
    the run goes to it."""
    if connection is not None and connection.provider != "sim":
        return None
    return cfg.sim


BATCH_PROTOCOLS = ("openai", "gemini")  # the protocols whose Batch API batchgen drives


def batch_connection(connection: Connection, endpoints: list[Any] | None) -> Connection:
    """``--via batch``: one endpoint. With a providers file it must hold exactly one, of a
    protocol with a Batch API (OpenAI's or Gemini's); its key and URL become the connection
    (``provider`` is the protocol). Raises UsageError naming the fix."""
    if not endpoints:
        return connection

    if len(endpoints) != 1 or endpoints[0].protocol not in BATCH_PROTOCOLS:
        raise UsageError(
            "--via batch goes to one endpoint with a Batch API (protocol openai or gemini): "
            "keep one such endpoint in --providers, or run the batch with --base-url / "
            "--api-key-env"
        )
    spec = endpoints[0]
    key = resolve_keys([spec])[spec.name]
    return Connection(spec.protocol, spec.base_url, spec.key_env, key)
