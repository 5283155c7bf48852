"""Round three: base64 written in MIME lines (RFC 2045: 76 characters, then CRLF), as gateways
built on Java's ``Base64.getMimeEncoder()`` or .NET's ``InsertLineBreaks`` send it. The image
is whole and was paid for; a strict decoder refused it as invalid_response (final: never
sent again), so the user paid for an image and got none.

Real HTTP against the simulator: ``[sim:b64_lines]`` (live answers, OpenAI and Gemini shapes)
and ``[batch:b64_lines]`` (a Batch API output line)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import anyio
from PIL import Image

from batchgen.errors import AttemptError
from batchgen.provider.openai import OpenAIImages
from tests.runhelpers import (
    cli_env,
    job_ids_by_prompt,
    log_table,
    run_cli,
    write_text_jobs,
)
from tests.test_batch import _run
from tests.test_providers import KEY, generate, job


def _is_whole_png(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.format == "PNG" and im.size[0] > 0


def test_openai_answer_in_mime_lines_is_saved(make_sim: Any) -> None:
    sim = make_sim(api_key=KEY)

    async def main() -> Any:
        provider = OpenAIImages(sim.base_url, KEY)
        try:
            return await provider.generate(
                job("[sim:b64_lines] a red fox", "gpt-image-1", n=2), timeout=10
            )
        except AttemptError as exc:
            return exc
        finally:
            await provider.aclose()

    result = anyio.run(main)
    assert not isinstance(result, AttemptError), result
    assert len(result.images) == 2 and all(_is_whole_png(i.data) for i in result.images)


def test_gemini_inline_data_in_mime_lines_is_saved(make_sim: Any) -> None:
    result = generate("gemini", make_sim(api_key=KEY), "[sim:b64_lines] a red fox")
    assert not isinstance(result, AttemptError), result
    assert _is_whole_png(result.images[0].data)


def test_batch_output_line_in_mime_lines_is_saved(tmp_path: Path, make_sim: Any) -> None:
    sim = make_sim(batch_seconds=0.2)
    prompts = ["[batch:b64_lines] a misty fjord", "a plain fjord"]
    jobs = write_text_jobs(tmp_path / "jobs.txt", prompts)
    run_dir = tmp_path / "run"
    done = run_cli(_run(jobs, run_dir, sim, "--quiet"), env=cli_env())
    assert done.code == 0, done.output
    ids = job_ids_by_prompt(run_dir)
    rows = {
        r["job_id"]: r for r in log_table(run_dir, ["job_id", "status", "image_paths"]).to_pylist()
    }
    row = rows[ids[prompts[0]]]
    assert row["status"] == "ok", row
    assert _is_whole_png((run_dir / row["image_paths"][0]).read_bytes())
