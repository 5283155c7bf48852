"""The endpoint's API, without spending: the key present and sent the way its protocol wants,
then the free call where the protocol has one (OpenAI's ``GET /models``): the key accepted, the
models served, and the rate-limit headers the answer carries — what the autopilot would start
from. Protocols without a free call say so (``?``): ``--probe`` proves their key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from batchgen.doctor.model import Section, fail, ok, unknown
from batchgen.errors import ErrorClass, classify_http, redact
from batchgen.limits import RateLimiter
from batchgen.provider.transport import loads, ratelimit_headers

# how each protocol wants its key (what batchgen's provider sends)
KEY_HEADERS = {
    "openai": "Authorization: Bearer …",
    "azure": "api-key: …",
    "gemini": "x-goog-api-key: …",
    "bfl": "x-key: …",
    "fal": "Authorization: Key …",
}
_LIST_CAP = 1 << 20  # a model list is a few KB; never read more than this


@dataclass(slots=True)
class Endpoint:
    """One endpoint a run would use; ``key`` is never printed."""

    name: str
    protocol: str
    base_url: str
    key_env: str
    key: str = field(repr=False)
    models: tuple[str, ...] = ()  # what a providers file routes here (() = every model)
    loopback: bool = False
    key_set: bool = True  # False: the variable is unset (a loopback placeholder, or none)


@dataclass(slots=True)
class Seen:
    """What the free call brought back."""

    served: set[str] | None = None  # None: no list (no free call, or it failed)
    headers: dict[str, str] = field(default_factory=dict)
    accepted: bool = False


def key_check(section: Section, ep: Endpoint) -> bool:
    how = KEY_HEADERS.get(ep.protocol, "?")
    if ep.key and ep.key_set:
        section.add(ok("key present", f"${ep.key_env} is set, sent as {how}"))
        return True
    if ep.key:  # a loopback server without a key variable: the placeholder a run sends
        section.add(
            ok(
                "key present",
                f"${ep.key_env} is not set: a local server needs none "
                f"(a placeholder is sent as {how})",
            )
        )
        return True
    section.add(
        fail(
            "key present",
            f"${ep.key_env} is not set",
            f"Export it (export {ep.key_env}=...) or name another variable with --api-key-env",
            ErrorClass.AUTH,
        )
    )
    return False


async def free_call(section: Section, ep: Endpoint, timeout: float = 15.0) -> Seen:
    """GET /models with the key (OpenAI-compatible endpoints); ``?`` for the others."""
    if ep.protocol != "openai":
        section.add(
            unknown(
                "key accepted",
                f"the {ep.protocol} protocol has no free call batchgen uses to check a key",
                "Run `batchgen doctor --probe` to send one cheapest request and prove it",
            )
        )
        return Seen()
    url = ep.base_url.rstrip("/") + "/models"
    shown = redact(url)
    headers = {"Authorization": f"Bearer {ep.key}", "Accept": "application/json"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as client,
            client.get(url, headers=headers, allow_redirects=False) as resp,
        ):
            body = await resp.content.read(_LIST_CAP)
            status, answer_headers = resp.status, dict(resp.headers)
    except TimeoutError:
        # the network checks connected: the server (or a proxy) took the request and said
        # nothing ("TimeoutError: " told none of that)
        section.add(
            fail(
                "key accepted",
                f"GET {shown}: connected, but no answer in {timeout:g} s",
                "Check that --base-url is the API itself (not a port forwarded to nothing, "
                "nor a proxy that holds requests: HTTPS_PROXY/HTTP_PROXY); a slow gateway: "
                "doctor --timeout SECONDS",
                ErrorClass.NETWORK,
            )
        )
        return Seen()
    except (aiohttp.ClientError, OSError) as exc:
        text = redact(f"{type(exc).__name__}: {exc}", (ep.key,))
        section.add(
            fail(
                "key accepted",
                f"GET {shown} failed: {text}",
                ErrorClass.NETWORK.remedy,
                ErrorClass.NETWORK,
            )
        )
        return Seen()
    seen = Seen(headers=ratelimit_headers(answer_headers))
    doc = loads(body)
    if status == 200 and isinstance(doc, dict) and isinstance(doc.get("data"), list):
        seen.accepted = True
        seen.served = {str(m.get("id")) for m in doc["data"] if isinstance(m, dict)}
        section.add(ok("key accepted", f"GET {shown}: 200, {len(seen.served)} models listed"))
        return seen
    section.add(_refused(ep, shown, status, doc))
    return seen


def _refused(ep: Endpoint, shown: str, status: int, doc: Any) -> Any:
    error = doc.get("error") if isinstance(doc, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    said = redact(str(message), (ep.key,))[:160].rstrip(". ") if message else ""
    if 300 <= status < 400:
        return fail(
            "base URL",
            f"GET {shown} answered {status}, a redirect: the API is elsewhere",
            "Use the URL the server redirects to as --base-url (batchgen does not follow "
            "redirects with the key)",
            ErrorClass.BAD_REQUEST,
        )
    if status in (404, 405) or status == 200:
        what = f"{status}, not JSON" if not isinstance(doc, dict) else f"{status}"
        return fail(
            "base URL",
            f"GET {shown} answered {what}: no OpenAI-compatible API at this path",
            "Check --base-url: it is the part before /images/generations and /models, usually "
            "ending in /v1 (e.g. https://api.openai.com/v1)",
            ErrorClass.BAD_REQUEST,
        )
    cls = classify_http(status, code if isinstance(code, str) else None)
    seen = f"GET {shown} answered {status}" + (f" ({code})" if code else "")
    seen += f": {said}" if said else ""
    if cls is ErrorClass.RATE_LIMIT:
        return unknown(
            "key accepted",
            seen + " — throttled, so the key is probably good",
            ErrorClass.RATE_LIMIT.remedy,
        )
    if cls in (ErrorClass.SERVER, ErrorClass.TIMEOUT):
        return unknown(
            "key accepted", f"{seen} — the server failed, the key was not judged", cls.remedy
        )
    remedy = cls.remedy.replace("OPENAI_API_KEY", f"${ep.key_env}").replace(
        ", then `batchgen resume RUN_DIR`", ""
    )
    return fail("key accepted", f"{seen}. {cls.diagnosis}", remedy, cls)


def models_check(section: Section, ep: Endpoint, seen: Seen, wanted: set[str]) -> None:
    """The job file's models that go to this endpoint, against what it lists."""
    mine = sorted(m for m in wanted if not ep.models or m in ep.models)
    if not mine:
        section.add(ok("models", "no job of the file goes to this endpoint"))
        return
    if seen.served is None:
        section.add(unknown("models", f"{', '.join(mine)}: not checked (no model list)"))
        return
    missing = [m for m in mine if m not in seen.served]
    if not missing:
        section.add(ok("models", f"{', '.join(mine)} served"))
        return
    listed = sorted(m for m in seen.served if "image" in m or "dall-e" in m) or sorted(seen.served)
    section.add(
        fail(
            "models",
            f"{', '.join(missing)} not served here (it lists {', '.join(listed[:8])}"
            f"{' …' if len(listed) > 8 else ''})",
            "Use a model this endpoint lists (--model or the job file), or route it with "
            "--providers to an endpoint that serves it",
            ErrorClass.BAD_REQUEST,
        )
    )


async def limits_check(
    section: Section,
    seen: Seen,
    rpm: float | None,
    ipm: float | None,
    concurrency: int | None,
    adaptive: bool,
) -> None:
    """The rate-limit headers seen, and the autopilot's starting point after reading them (the
    run's own RateLimiter, fed the same headers)."""
    limiter = RateLimiter(rpm, ipm, concurrency=concurrency, adapt=adaptive)
    limiter.observe_headers(seen.headers)
    start = limiter.describe()
    if seen.headers:
        shown = ", ".join(
            f"{k.removeprefix('x-ratelimit-')}={v}"
            for k, v in sorted(seen.headers.items())
            if k.startswith("x-ratelimit-limit-")
        )
        section.add(
            ok(
                "rate limits",
                f"{shown or 'x-ratelimit-* headers'}; the autopilot starts at {start}",
            )
        )
        return
    mode = "finds the limit from there" if adaptive else "holds it (--no-adapt)"
    section.add(
        unknown(
            "rate limits",
            f"no x-ratelimit-* headers seen (many providers send "
            f"them only on image answers); the autopilot starts at {start} and "
            f"{mode}",
        )
    )
