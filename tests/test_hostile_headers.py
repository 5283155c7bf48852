"""Rate-limit headers that would stall a run, from a hostile server through real HTTP: a
Retry-After of a year, an HTTP date decades away, x-ratelimit-limit-* of 0 or negative,
resets of `1e9s`. Every pause is capped (--max-pause) and said in the log, nonsense limits are
ignored, the run finishes."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from aiohttp import web
from PIL import Image

from batchgen.runlog.reader import read_log
from tests.runhelpers import MODEL_FLAGS, SECRET_KEY, cli_env, run_cli

_PNG = io.BytesIO()
Image.new("RGB", (8, 8), (200, 30, 30)).save(_PNG, "PNG")
_ANSWER = json.dumps({"created": 1, "data": [{"b64_json": base64.b64encode(_PNG.getvalue()).decode()}]})


@contextmanager
def hostile(handler: Any) -> Iterator[str]:
    """An aiohttp app on 127.0.0.1 in a thread, serving ``handler`` at /v1/images/generations;
    yields its base URL."""
    ready, box = threading.Event(), {}

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/images/generations", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["url"] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1"  # type: ignore[union-attr]
        box["stop"] = stop = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield box["url"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)


def _jobs(path: Path, count: int) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(count)))
    return path


def test_absurd_rate_limit_headers_are_capped_ignored_and_logged(tmp_path: Path) -> None:
    seen: dict[str, int] = {}

    async def handler(request: web.Request) -> web.Response:
        prompt = (await request.json())["prompt"]
        seen[prompt] = seen.get(prompt, 0) + 1
        if seen[prompt] == 1 and prompt[-1] in "0123":  # a year, or a date decades away
            wait = {"retry-after": "31536000"} if prompt.endswith(("0", "2", "4")) else {
                "retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"}  # fmt: skip
            return web.json_response(
                {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}},
                status=429,
                headers={**wait, "x-ratelimit-limit-requests": "0",
                         "x-ratelimit-remaining-requests": "0",
                         "x-ratelimit-reset-requests": "1e9s"},
            )  # fmt: skip
        return web.Response(
            text=_ANSWER, content_type="application/json",
            headers={"x-ratelimit-limit-requests": "-5", "x-ratelimit-limit-images": "nan",
                     "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1e9s"},
        )  # fmt: skip

    run_dir = tmp_path / "run"
    with hostile(handler) as url:
        done = run_cli(
            ["run", str(_jobs(tmp_path / "jobs.jsonl", 6)), "--run-dir", str(run_dir),
             "--base-url", url, *MODEL_FLAGS, "--max-pause", "0.2", "--yes"],
            env=cli_env(), timeout=60,
        )  # fmt: skip
    assert done.code == 0, done.output
    assert "Traceback" not in done.stderr
    assert SECRET_KEY not in done.output
    log = read_log(run_dir)
    limited = log.filter(pc.equal(log["error_class"], "rate_limit"))
    assert limited.num_rows == 4
    messages = limited["error_message"].to_pylist()
    assert all("capped to 0s" in m for m in messages), messages  # the log says each pause was cut
    learned = json.loads((run_dir / "run.json").read_text())["sessions"][-1]["summary"]["autopilot"]
    # limits of 0, -5 and nan announce nothing: the rate was not driven to a standstill
    assert learned["rpm_source"] != "headers" and learned["ipm"] is None
    assert learned["capped_pause_s"] is not None and learned["capped_pause_s"] > 1e6
