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
