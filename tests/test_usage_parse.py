"""``parse_usage``'s fast path (plain int counts) gives what the count-by-count check gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from batchgen.provider.base import Usage
from batchgen.provider.usage import MAX_TOKENS, _checked, parse_usage

_COUNT = st.one_of(
    st.none(),
    st.integers(min_value=-5, max_value=MAX_TOKENS + 5),
    st.sampled_from([0, 1, MAX_TOKENS, True, False, 3.0, 2.5, float("inf"), "7", [1]]),
)
_FIELDS = ("input_tokens", "output_tokens")
_DETAILS = ("text_tokens", "image_tokens")


@st.composite
def _usage(draw: st.DrawFn) -> Any:
    raw = {k: draw(_COUNT) for k in _FIELDS if draw(st.booleans())}
    shape = draw(st.sampled_from(["none", "absent", "dict", "empty", "list"]))
    if shape == "none":
        raw["input_tokens_details"] = None
    elif shape == "dict":
        raw["input_tokens_details"] = {k: draw(_COUNT) for k in _DETAILS if draw(st.booleans())}
    elif shape == "empty":
        raw["input_tokens_details"] = {}
    elif shape == "list":
        raw["input_tokens_details"] = [1, 2]
    return raw


@settings(max_examples=400, deadline=None)
@given(_usage())
def test_the_fast_path_and_the_careful_one_agree(raw: dict[str, Any]) -> None:
    assert parse_usage(raw) == _checked(raw)


def test_what_is_not_an_object_is_still_refused_with_its_note() -> None:
    usage, note = parse_usage([1, 2])
    assert usage is not None and usage.suspect and note is not None
    assert parse_usage(None) == (None, None)


def test_with_no_breakdown_the_input_is_the_prompts_text_on_either_path() -> None:
    # no input_tokens_details (or an empty one): a generation's prompt, all of it text. The
    # plain counts take the fast path; an output count that is not one takes the careful path
    for details in ({}, {"input_tokens_details": None}, {"input_tokens_details": {}}):
        usage, note = parse_usage({"input_tokens": 12, "output_tokens": 4160, **details})
        assert (usage, note) == (Usage(12, 12, 0, 4160), None)
        usage, note = parse_usage({"input_tokens": 12, "output_tokens": -1, **details})
        assert usage == Usage(12, 12, 0, 0, suspect=True) and note and "output_tokens=-1" in note
    # a breakdown is taken as given, text and images apart
    usage, _ = parse_usage(
        {"input_tokens": 400, "input_tokens_details": {"text_tokens": 12, "image_tokens": 388}}
    )
    assert usage == Usage(400, 12, 388, 0)
