"""The one redaction: what removes an API key from everything batchgen prints or stores.

:func:`redact` is used for every message and field a provider sends back, every error
message, the base URL in settings and reports; :func:`redact_argv` (the command line saved in
run.json) applies it to each argument after hiding the values of secret-named flags. A key
is caught in any of the forms it travels in:
- the key itself, in any letter case, when the caller knows it (``secrets``);
- anything that looks like an OpenAI-style key (``sk-...``);
- a credential after ``Bearer``/``Basic`` (an ``Authorization`` header echoed back);
- the value of a key-named header (``api-key: ...``, ``x-goog-api-key: ...``);
- the value of a key-named query parameter (``?api_key=...``, ``&key=...``);
- the value of a key-named JSON field (``"api_key": "..."``: a request body echoed back);
- the password of a URL's userinfo (``https://user:password@host``: the user is kept), and a
  userinfo without a password (``https://TOKEN@host``: gateways take a token there).

:func:`redact_url` also hides every query value of a URL (``?code=...``: Azure Functions and
gateways take keys under any name) — for URLs that are stored (run.json), not for messages.
:func:`looks_like_key` tells a key pasted where a variable's NAME belongs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# names under which a value is a secret: whole words, so `monkey` or `max_tokens` are not
_SECRET_NAME = (
    r"(?:[A-Za-z0-9]+[_.\-])*"
    r"(?:api[_\-]?key|key|token|access[_\-]?token|secret|password|passwd|authorization"
    r"|credential|signature|sig)"
)
_KEYLIKE = re.compile(r"sk-[A-Za-z0-9_\-]{8,}", re.IGNORECASE)
# the userinfo of an absolute URL: keep the user, hide the password
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/?#@\s:]*:)[^/?#@\s]*@")
# a userinfo with no password: all of it may be a token
_URL_USER = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#@\s:]+@")
# a credential after an auth scheme; it holds a digit, so "the bearer messenger" is prose
_AUTH_SCHEME = re.compile(
    r"\b((?:Bearer|Basic|Token)\s+)(?=[A-Za-z0-9._~+/=\-]*\d)[A-Za-z0-9._~+/=\-]{8,}",
    re.IGNORECASE,
)
# `api-key: VALUE`, `x-goog-api-key: VALUE` (a header echoed back); Authorization has a scheme
_HEADER = re.compile(r"(?<![\w\-])((?:x-)?(?:goog-)?api-key\s*:\s*)[^\s,;\"']+", re.IGNORECASE)
_QUERY = re.compile(rf"([?&]{_SECRET_NAME}=)[^&#\s\"']+", re.IGNORECASE)
# `"api_key": "VALUE"` in JSON (or escaped JSON inside a message, or a Python repr's quotes)
_JSON_FIELD = re.compile(
    rf"""(\\?["']{_SECRET_NAME}\\?["']\s*:\s*\\?["'])[^"'\\]+""", re.IGNORECASE
)
# A cheap pre-check: every pattern above can match only where one of these literals occurs
# (in any letter case, as the patterns match), so a text with none of them is returned as it
# is. A URL's userinfo needs "@"; the auth schemes are named; every secret name (_SECRET_NAME,
# and so the header, query and JSON-field patterns) ends in key, token, secret, passw(or)d,
# authorization, credential or sig(nature); a key-like value starts "sk-". Most of what
# providers send (request ids, revised prompts, error texts) has none, and redaction runs on
# every answer. ASCII text is checked by plain containment in its lower case (~0.5 µs);
# other text by the same literals under IGNORECASE, which folds as the patterns do (the long
# s, the Kelvin sign).
_TRIGGERS = (
    "@",
    "sk-",
    "bearer",
    "basic",
    "token",
    "key",
    "secret",
    "passw",
    "authorization",
    "credential",
    "sig",
)
_MAYBE_SECRET = re.compile("|".join(map(re.escape, _TRIGGERS)), re.IGNORECASE)


def _may_hold_secret(text: str, lowered: str | None) -> bool:
    if lowered is None:
        return _MAYBE_SECRET.search(text) is not None
    # a loop, not any() over a generator (SIM110): half the cost, on every answer
    for trigger in _TRIGGERS:  # noqa: SIM110
        if trigger in lowered:
            return True
    return False


# a flag or a settings key naming a secret (`--api-key`, `token`); an ENV_NAME value is no secret
# on[-_]budget: the --on-budget command line may carry a webhook's secret; --notify URLs
# (apprise) carry webhook tokens, and --on-end commands may
SECRETISH = re.compile(
    r"key|token|secret|password|authorization|credential|on[-_]budget|notify|on-end", re.IGNORECASE
)
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_ANY_CASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_env_name(value: str) -> bool:
    """A variable's NAME in any letter case (``openai_key`` is one), not a key pasted in
    its place (:func:`looks_like_key`): what a ``*_env`` setting may keep in run.json."""
    return bool(_ANY_CASE_NAME.match(value)) and not looks_like_key(value)


def looks_like_key(name: str) -> bool:
    """True for a value that looks like an API key rather than a variable's name: an
    ``sk-`` key, or 20+ characters with no underscore that mix letters and digits (Azure's
    hex keys, Gemini's ``AIza…``), or long with many digits. Real names
    (``OPENAI_API_KEY``, ``azure_key_2``) have underscores and few digits."""
    if _KEYLIKE.search(name) or name.startswith("AIza"):
        return True
    if len(name) < 20:
        return False
    digits = sum(c.isdigit() for c in name)
    letters = sum(c.isalpha() for c in name)
    if "_" not in name and digits and letters:
        return True
    return digits >= 8 and digits >= len(name) // 4


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with every secret (in any letter case) and every key-looking value (see the
    module's list) replaced by ``***``."""
    lowered = text.lower() if text.isascii() else None
    for secret in secrets:
        if secret and len(secret) >= 4:
            if lowered is not None and secret.isascii() and secret.lower() not in lowered:
                continue  # (ASCII both: IGNORECASE is lower-case containment)
            text = _secret_pattern(secret).sub(MASK, text)
            lowered = text.lower() if text.isascii() else None
    if not _may_hold_secret(text, lowered):
        return text
    return _redact_patterns(text)


def _redact_patterns(text: str) -> str:
    """Every pattern of the module's list but the known secrets, on any text."""
    text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    text = _URL_USER.sub(rf"\1{MASK}@", text)
    text = _AUTH_SCHEME.sub(rf"\1{MASK}", text)
    text = _HEADER.sub(rf"\1{MASK}", text)
    text = _QUERY.sub(rf"\1{MASK}", text)
    text = _JSON_FIELD.sub(rf"\1{MASK}", text)
    return _KEYLIKE.sub("sk-" + MASK, text)


def redact_url(url: str) -> str:
    """``url`` as stored: :func:`redact`, and every query value hidden (``?code=***``)."""
    parts = urlsplit(redact(url))
    if not parts.query:
        return urlunsplit(parts)
    hidden = "&".join(
        f"{name}={MASK}" if sep else name
        for name, sep, _ in (item.partition("=") for item in parts.query.split("&"))
    )
    return urlunsplit(parts._replace(query=hidden))


def has_hidden_query(url: str) -> bool:
    """True for a stored URL whose query values were hidden (it cannot be used as it is)."""
    return f"={MASK}" in urlsplit(url).query


def redact_argv(argv: Sequence[str]) -> list[str]:
    """The command line without secrets: ``--api-key X`` / ``--api-key=X`` become ``***``
    (environment variable names stay: ``--api-key-env MY_KEY``), and every argument is
    passed through :func:`redact`, with those flags' values as known secrets (a key given
    once as a flag and again inside another argument is caught there too)."""
    out: list[str] = []
    hidden: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            hide_next = False
            if not ENV_NAME.match(arg):
                hidden.append(arg)
                arg = MASK
            out.append(arg)
        elif arg.startswith("-") and SECRETISH.search(arg):
            name, eq, value = arg.partition("=")
            if eq and not ENV_NAME.match(value):
                hidden.append(value)
                arg = f"{name}={MASK}"
            hide_next = not eq
            out.append(arg)
        else:
            out.append(arg)
    return [_url_arg(redact(arg, hidden)) for arg in out]


def _url_arg(arg: str) -> str:
    """An argument that is (or ends in, ``--base-url=URL``) an http(s) URL: its query values
    hidden too (``?code=...`` keys of gateways and Azure Functions)."""
    name, eq, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
    if not value.lower().startswith(("http://", "https://")) or "?" not in value:
        return arg
    return f"{name}{eq}{redact_url(value)}"


@functools.lru_cache(maxsize=8)
def _secret_pattern(secret: str) -> re.Pattern[str]:
    return re.compile(re.escape(secret), re.IGNORECASE)
