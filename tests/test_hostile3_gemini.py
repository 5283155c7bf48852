"""Round three: a Gemini answer spelled in snake_case (``inline_data``, ``mime_type``,
``finish_reason``, ``prompt_feedback``), as a gateway that dumps the google-genai SDK's
objects sends it (protobuf's JSON mapping takes both spellings). The image was there, paid
for, and refused as "no inlineData part" — invalid_response, final; a safety block came out as
invalid_response instead of content_policy.

Real HTTP against the simulator's Gemini route, ``[sim:snake_case]``."""

from __future__ import annotations

from typing import Any

from batchgen.errors import AttemptError, ErrorClass
from tests.test_providers import KEY, generate


def test_a_snake_case_answer_gives_its_image(make_sim: Any) -> None:
    result = generate("gemini", make_sim(api_key=KEY), "[sim:snake_case] a red fox")
    assert not isinstance(result, AttemptError), result
    assert len(result.images) == 1 and result.images[0].data[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.request_id and result.request_id.startswith("gem-")


def test_a_snake_case_safety_block_is_content_policy(make_sim: Any) -> None:
    sim = make_sim(api_key=KEY)
    result = generate("gemini", sim, "[sim:snake_case][sim:content_policy] a red fox")
    assert isinstance(result, AttemptError), result
    assert result.error_class is ErrorClass.CONTENT_POLICY, result.message
    assert result.code == "IMAGE_SAFETY"


def test_a_snake_case_answer_is_priced_from_its_own_usage(make_sim: Any) -> None:
    """``usage_metadata`` with ``prompt_token_count``/``candidates_token_count`` is read as
    ``usageMetadata`` is: the same answer in either spelling reports the same tokens (before,
    the snake_case one reported none and was priced from the table)."""
    sim = make_sim(api_key=KEY)
    camel = generate("gemini", sim, "a red fox")
    snake = generate("gemini", sim, "[sim:snake_case] a red fox")
    assert not isinstance(camel, AttemptError) and not isinstance(snake, AttemptError)
    assert camel.usage is not None and camel.usage.output_tokens > 0, camel.usage
    assert snake.usage is not None, "the snake_case answer's usage was not read"
    # (the prompts differ by the marker, so the input counts do; the image's output does not)
    assert snake.usage.output_tokens == camel.usage.output_tokens
    assert snake.usage.input_tokens > 0 and not snake.usage.suspect
