"""The one redaction (batchgen.redaction): a key in any form it travels in never survives,
whether the caller knows the key or not, and text without a key is left as it was."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchgen import errors, redaction
from batchgen.redaction import redact, redact_argv
from batchgen.runlog import rundir

# keys as providers issue them: OpenAI, Gemini, a gateway's token; all hold a digit
KEYS = ["sk-proj-AbCdEf0123456789", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "gw_tok_77xQ2k9Lm"]

# (form, text with {key} where the key goes); none names the key to redact()
FORMS = [
    ("bearer header", "Authorization: Bearer {key}"),
    ("bearer, lower case", "sent authorization: bearer {key} and got 401"),
    ("azure header", "api-key: {key}"),
    ("gemini header", "x-goog-api-key:{key}, retry"),
    ("query parameter", "GET https://host/v1/models?key={key}&alt=json failed"),
    ("query parameter, second", "https://host/v1/x?alt=json&api_key={key}#frag"),
    ("query parameter, token", "https://host/v1/x?access_token={key}"),
    ("JSON body echo", '{{"model": "m", "api_key": "{key}", "prompt": "p"}}'),
    ("JSON body echo, escaped", '{{\\"api_key\\": \\"{key}\\"}}'),
    ("Python repr", "{{'Authorization': 'Bearer {key}'}}"),
    ("repr of a dict field", "{{'x-api-key': '{key}'}}"),
    ("URL userinfo", "ClientConnectorError: https://user:{key}@host:443/v1"),
]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(("form", "template"), FORMS, ids=[f for f, _ in FORMS])
def test_a_key_in_any_form_never_survives_even_unnamed(key: str, form: str, template: str) -> None:
    text = template.format(key=key)
    assert key in text
    for out in (redact(text), redact(text, (key,))):
        assert key not in out and key.lower() not in out.lower(), (form, out)
        assert "***" in out, (form, out)


@pytest.mark.parametrize("key", KEYS)
def test_argv_hides_flag_values_in_both_spellings(key: str) -> None:
    argv = [
        "batchgen",
        "run",
        "jobs.jsonl",
        "--api-key",
        key,
        f"--api-key={key}",
        "--token",
        key,
        "--api-key-env",
        "MY_KEY",
        "--rpm",
        "30",
        f"--x=see {key}",
    ]
    out = redact_argv(argv)
    assert not any(key in arg for arg in out), out
    assert out[:4] == ["batchgen", "run", "jobs.jsonl", "--api-key"]
    assert out[4:8] == ["***", "--api-key=***", "--token", "***"]
    assert out[8:12] == ["--api-key-env", "MY_KEY", "--rpm", "30"]  # a variable's name stays
    assert out[12] == "--x=see ***"  # the flag's value, seen once, is a known secret after
    # the run dir's helper is the same function
    assert rundir.redact_argv(argv) == out


@given(
    key=st.text(string.ascii_letters + string.digits + "-_", min_size=12, max_size=60).filter(
        lambda k: any(c.isdigit() for c in k)
    ),
    form=st.sampled_from([t for _, t in FORMS]),
)
def test_any_key_shape_in_any_form(key: str, form: str) -> None:
    assert key not in redact(form.format(key=key))


def test_the_known_key_is_caught_anywhere_in_any_case() -> None:
    key = "gateway-token-XYZ7"
    assert redact(f"echo {key.lower()} / {key.upper()}", (key,)) == "echo *** / ***"
    assert redact("ab", ("ab",)) == "ab"  # too short to be a key: never masks prose


@pytest.mark.parametrize(
    "text",
    [
        "a watercolour of a monkey=happy, max_tokens=100 and ?size=1024x1024&quality=high",
        '{"max_tokens": "100", "monkey": "x", "prompt": "the bearer of news"}',
        "Bearer token expired",  # no credential: nothing to hide
        "https://api.openai.com/v1/images/generations?api-version=2024-02-01",
        '{"api_key": ""}',
    ],
)
def test_text_without_a_key_is_unchanged(text: str) -> None:
    assert redact(text) == text


_NAMES = (
    "key",
    "Token",
    "secret",
    "passwd",
    "password",
    "authorization",
    "credential",
    "sig",
    "x-signature",
)
# pieces of what a provider sends and of every form above, and the letters that IGNORECASE
# folds across scripts (the long s, the Kelvin sign, the dotless i)
_PIECES = st.sampled_from(
    [
        *string.ascii_letters,
        *string.digits,
        *" -_:=?&@/\\\"'.,#{}",
        "sk-",
        "Bearer ",
        "basic ",
        "Token ",
        "api-key",
        "key",
        "KEY",
        "secret",
        "passwd",
        "password",
        "authorization",
        "credential",
        "sig",
        "signature",
        "access_token",
        "https://",
        "://",
        "\u017f",
        "\u212a",
        "\u0131",
        "\u017fk-",
        "\u212aey",
        "é",
        "ẞ",
        "\n",
        "?sig=",
        "&token=",
        "?Key=",
        '"api_key": "',
        "'secret':'",
        "x-goog-api-key:",
        "AbCdEf0123456789",
        "gw_tok_77xQ2k9Lm",
        "GW_TOK_77XQ2K9LM",
        *(t.format(key=k) for _, t in FORMS for k in KEYS),
        *(f"{sep}{name}=" for sep in "?&" for name in _NAMES),
        *(f'"{name}": "' for name in _NAMES),
    ]
)
_SECRETS = st.lists(
    st.sampled_from(
        ["", "ab", "gw_tok_77xQ2k9Lm", "\u212aey-123", "sk-bench", "Secret9", "tok\u0131n-77"]
    ),
    max_size=2,
)


def _every_pattern(text: str, secrets: list[str]) -> str:
    """What ``redact`` gave before its pre-check: every pattern on every text."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = redaction._secret_pattern(secret).sub(redaction.MASK, text)
    return redaction._redact_patterns(text)


@settings(max_examples=400)
@given(st.lists(_PIECES, max_size=6).map("".join), _SECRETS)
def test_the_pre_check_never_skips_what_the_patterns_would_hide(
    text: str, secrets: list[str]
) -> None:
    """``redact`` returns a text as it is when no pattern can match (a pre-check for the
    literals each pattern needs): it must give exactly what the full set of patterns gives."""
    assert redact(text, secrets) == _every_pattern(text, secrets)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *((f"x?{name}=abc", f"x?{name}=***") for name in _NAMES),
        *((f'{{"{name}": "abc"}}', f'{{"{name}": "***"}}') for name in _NAMES),
        ("Basic dXNlcjpwYXNz1", "Basic ***"),
        ("bearer abcdefgh1", "bearer ***"),
        ("https://u:pw@host", "https://u:***@host"),
        ("\u017fk-abcdefgh12", "sk-***"),  # the long s folds to s, as the pattern matches it
    ],
)
def test_each_literal_of_the_pre_check_lets_its_pattern_run(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_pre_check_passes_ordinary_answers_through() -> None:
    for text in ("req_6a1f0c2e9b", "a watercolour fox at dawn, soft light", "HTTP 500"):
        assert not redaction._may_hold_secret(text, text.lower())
        assert redact(text, ("sk-bench",)) == text


def test_every_module_uses_the_one_function() -> None:
    assert errors.redact is redaction.redact


# ------------------------------------------------------------------ the shared transport
def test_transport_failures_are_classified_and_never_carry_the_key() -> None:
    import aiohttp
    import anyio

    from batchgen.errors import AttemptError, ErrorClass
    from batchgen.provider.transport import KeyedSession

    key = "gw_tok_77xQ2k9Lm"
    client = KeyedSession("http://127.0.0.1:9/v1/", key)
    assert client.base_url == "http://127.0.0.1:9/v1"

    async def fail(exc: BaseException) -> AttemptError:
        with pytest.raises(AttemptError) as caught, client._transport_errors("late", "GET /x: "):
            raise exc
        return caught.value

    async def main() -> list[AttemptError]:
        try:
            # a real request: the URL (with the key in its query) is echoed by aiohttp's error
            with pytest.raises(AttemptError) as real, client._transport_errors("late"):
                await client._client().get(f"http://[::1/?key={key}")
            return [
                real.value,
                await fail(TimeoutError()),
                await fail(aiohttp.ClientOSError(104, f"reset by {key.upper()}")),
                await fail(ConnectionRefusedError(111, f"Bearer {key} refused")),
            ]
        finally:
            await client.aclose()

    real, timeout, reset, refused = anyio.run(main)
    assert client._session is None  # closed, and a next use opens a new one
    assert real.error_class is ErrorClass.NETWORK and "Invalid" in real.message
    assert (timeout.error_class, timeout.message) == (ErrorClass.TIMEOUT, "late")
    assert reset.error_class is refused.error_class is ErrorClass.NETWORK
    assert reset.message.startswith("GET /x: ClientOSError")
    for error in (real, reset, refused):
        assert key.lower() not in str(error).lower() and "***" in error.message, error


@pytest.mark.parametrize("key", ["sk-test-SECRET-1234567890", "abcd", "", "Kelvin-\u212a-key-123"])
def test_a_request_id_is_kept_or_redacted_as_every_other_field(key: str) -> None:
    # KeyedSession._id_text skips the general path for plain ids: it must give what
    # field_text(value, 200) gives for every id, plain or hostile
    from batchgen.provider.transport import KeyedSession

    client = KeyedSession("http://127.0.0.1:1", key)
    ids = [
        None,
        "req_0123abcdef",
        "7f3e-aa01_B",
        key,
        key.upper(),
        f"req-{key}",
        "SK-abcdefghijklmnop",
        "sk-proj-abcdefghij",
        "x" * 250,
        "token=abc",
        "Bearer 12345678abc",
        "kelvin-k",
        "req id with spaces",
    ]
    for value in ids:
        assert client._id_text(value) == client.field_text(value, 200), value


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abkpsKS-_0123 =:@", max_size=40))
def test_any_request_id_comes_out_as_field_text_makes_it(value: str) -> None:
    from batchgen.provider.transport import KeyedSession

    client = KeyedSession("http://127.0.0.1:1", "sk-ab12")
    assert client._id_text(value) == client.field_text(value, 200)


# the shapes a key is known by without a flag naming it (a short gateway token is not one)
SHAPED = [
    "sk-proj-AbCdEf0123456789",
    "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "0123456789abcdef" * 2,
]


@pytest.mark.parametrize(
    ("key", "argv"),
    [
        # a flag that does not exist, named like a key, then the key: any key
        *((key, ["run", "jobs.jsonl", "--apikey", "{key}"]) for key in KEYS),
        *((key, ["run", "jobs.jsonl", "--token={key}"]) for key in KEYS),
        # the key where a number belongs, or one positional too many: a key-shaped one
        *((key, ["run", "jobs.jsonl", "--rpm", "{key}"]) for key in SHAPED),
        *((key, ["plan", "jobs.jsonl", "{key}"]) for key in SHAPED),
    ],
)
def test_the_command_lines_own_errors_never_echo_a_key(
    key: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse's "unrecognized arguments: --apikey sk-…" printed the key on the terminal."""
    from batchgen.cli.main import main

    with pytest.raises(SystemExit) as done:
        main([a.format(key=key) for a in argv])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "error:" in err, err
    assert key not in err and "***" in err, err
