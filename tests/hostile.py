"""A hostile OpenAI-compatible images server for tests: real HTTP on 127.0.0.1, answers that
real providers (and broken gateways) send but the simulator does not model — numeric error
codes, thousands of images for n=1, lying `usage`, endless and gzip-bomb bodies, decompression
bomb images, and the caller's own key echoed back in every field.

The job's prompt names the case: ``{"prompt": "numeric_code"}`` gets ``CASES["numeric_code"]``.
Every case is a function of the request (its key, so it can be echoed) returning a response.

    with hostile_server() as server:
        run_cli(["run", jobs, "--base-url", server.url, ...], env=cli_env())
        server.prompts                      # what was asked, in order
"""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from PIL import Image

from batchgen.runlog.reader import read_log
from tests.runhelpers import (
    SECRET_KEY,
    Finished,
    check_log_readable,
    cli_env,
    run_cli,
    secret_in_log,
    write_jsonl_jobs,
)

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


def tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int = 40_000, height: int = 40_000) -> bytes:
    """A PNG whose header claims width × height pixels (1.6 billion by default): a few hundred
    bytes that Pillow refuses to open (DecompressionBombError) and a decoder would choke on."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


PNG_B64 = base64.b64encode(tiny_png()).decode()


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return web.Response(status=status, body=raw, content_type="application/json", headers=headers)


def _error(status: int, **error: Any) -> Callable[[web.Request, str], Awaitable[web.Response]]:
    async def handler(_req: web.Request, _key: str) -> web.Response:
        return _json(status, {"error": error})

    return handler


def _raw(status: int, body: bytes) -> Handler:
    async def handler(_req: web.Request, _key: str) -> web.Response:
        return _json(status, body)

    return handler


def _ok(*, count: int = 1, usage: Any = None, **item: Any) -> Handler:
    async def handler(_req: web.Request, _key: str) -> web.Response:
        body: dict[str, Any] = {
            "created": 1,
            "data": [{"b64_json": PNG_B64, **item} for _ in range(count)],
        }
        if usage is not None:
            body["usage"] = usage
        return _json(200, body)

    return handler


async def _echo_key_error(_req: web.Request, key: str) -> web.Response:
    """A 400 that puts the caller's key everywhere, upper-cased too."""
    return _json(
        400,
        {"error": {"code": key.upper(), "type": key, "message": f"key {key} / {key.upper()}"}},
        headers={"x-request-id": f"req-{key.upper()}"},
    )


async def _echo_key_ok(_req: web.Request, key: str) -> web.Response:
    body = {"data": [{"b64_json": PNG_B64, "revised_prompt": f"made with {key.upper()}"}]}
    return _json(200, body, headers={"x-request-id": key})


async def _endless(req: web.Request, _key: str) -> web.StreamResponse:
    """200 with a JSON body that never ends (no content-length): the client must stop."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(req)
    await resp.write(b'{"data": [{"b64_json": "')
    block = b"A" * (1 << 20)
    try:
        while True:
            await resp.write(block)
    except (ConnectionError, asyncio.CancelledError, RuntimeError):
        pass  # the client hung up, as it should
    return resp


async def _gzip_bomb(req: web.Request, _key: str) -> web.StreamResponse:
    """A gzip body of a few hundred KB that inflates to ~1 GB of JSON."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    resp = web.StreamResponse(
        status=200, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    await resp.prepare(req)
    try:
        await resp.write(comp.compress(b'{"data": [{"b64_json": "'))
        zeros = b"A" * (1 << 20)
        for _ in range(1024):
            await resp.write(comp.compress(zeros))
        await resp.write(comp.compress(b'"}]}') + comp.flush())
    except (ConnectionError, asyncio.CancelledError, RuntimeError):
        pass
    return resp


async def _bomb_image(_req: web.Request, _key: str) -> web.Response:
    return _json(200, {"data": [{"b64_json": base64.b64encode(bomb_png()).decode()}]})


# rate-limit headers that would stall a client that believed them
_ABSURD = {
    "x-ratelimit-limit-requests": "-5",
    "x-ratelimit-limit-images": "nan",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "1e9s",
}


def _429_once(retry_after: str) -> Handler:
    """The first request of this case (per server) is a 429 asking for ``retry_after`` with a
    limit of 0 and a reset of a billion seconds; every later one succeeds, with headers as
    absurd."""
    calls: dict[int, int] = {}

    async def handler(req: web.Request, _key: str) -> web.Response:
        n = calls[id(req.app)] = calls.get(id(req.app), 0) + 1
        if n == 1:
            error = {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}
            headers = {**_ABSURD, "retry-after": retry_after, "x-ratelimit-limit-requests": "0"}
            return _json(429, {"error": error}, headers)
        return _json(200, {"created": 1, "data": [{"b64_json": PNG_B64}]}, _ABSURD)

    return handler


# error.code / error.type the way some providers write them (OpenRouter: a number)
CASES: dict[str, Handler] = {
    "retry_after_a_year": _429_once("31536000"),
    "retry_after_2099": _429_once("Wed, 21 Oct 2099 07:28:00 GMT"),
    "retry_after_inf": _429_once("inf"),
    "numeric_code": _error(400, code=400, message="Provider returned error"),
    "numeric_code_402": _error(402, code=402, message="Insufficient credits"),
    "float_code": _error(400, code=1.5e300, type=7, message="odd"),
    "object_code": _error(400, code={"nested": ["x"]}, type=["a", 1], message={"text": "obj"}),
    "list_code": _error(500, code=[1, 2, 3], message=["several", "parts"]),
    "null_code": _error(400, code=None, type=None, message=None),
    "bool_code": _error(400, code=True, type=False, message=12345),
    "many_images": _ok(count=5000),
    "usage_negative": _ok(usage={"input_tokens": -(10**6), "output_tokens": -5}),
    "usage_text": _ok(usage={"input_tokens": "lots", "output_tokens": {"a": 1}}),
    "usage_huge": _raw(
        200,
        b'{"data": [{"b64_json": "%s"}], "usage": {"input_tokens": '
        b'100000000000000000000000000000, "output_tokens": 1e300}}' % PNG_B64.encode(),
    ),
    "usage_nan": _raw(
        200,
        b'{"data": [{"b64_json": "%s"}], "usage": {"input_tokens": 5, '
        b'"output_tokens": 1e999}}' % PNG_B64.encode(),
    ),
    "usage_zero": _ok(usage={"input_tokens": 0, "output_tokens": 0}),
    "endless": _endless,
    "gzip_bomb": _gzip_bomb,
    "bomb_image": _bomb_image,
    "echo_key_error": _echo_key_error,
    "echo_key_ok": _echo_key_ok,
    "markup_401": _error(401, code="invalid_api_key", message="[/x] bad key [bold]x[/bold]"),
    "ansi_400": _error(
        400, code="\x1b[31mred\x1b[0m", message="\x1b]0;pwned\x07\x1b[2Jcleared \x1b[1mbold"
    ),
    "ok": _ok(),
}


@dataclass
class HostileServer:
    url: str = ""
    prompts: list[str] = field(default_factory=list)  # every request's prompt, in order


def _app(server: HostileServer) -> web.Application:
    async def generations(req: web.Request) -> web.StreamResponse:
        key = req.headers.get("Authorization", "").removeprefix("Bearer ")
        body = orjson.loads(await req.read())
        server.prompts.append(str(body.get("prompt")))
        case = CASES.get(str(body.get("prompt")))
        if case is None:
            return _json(400, {"error": {"code": "unknown_case", "message": "no such case"}})
        return await case(req, key)

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/v1/images/generations", generations)
    return app


@contextmanager
def hostile_server() -> Iterator[HostileServer]:
    """Serve the cases on a free loopback port in a daemon thread."""
    ready = threading.Event()
    box: dict[str, Any] = {}
    server = HostileServer()

    async def serve() -> None:
        runner = web.AppRunner(_app(server), handle_signals=False, shutdown_timeout=0.25)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        server.url = f"http://127.0.0.1:{port}/v1"
        box["loop"] = asyncio.get_running_loop()
        box["stop"] = stop = asyncio.Event()
        ready.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(timeout=30), "the hostile server did not start"
    try:
        yield server
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(timeout=10)


# ---- running `batchgen run` against it, and what every run must hold -------------------------
MODEL = ("--model", "gpt-image-1", "--size", "1024x1024", "--quality", "low")


def run(
    server: HostileServer, tmp: Path, jobs: list[dict[str, Any]], *extra: str
) -> tuple[Finished, Path]:
    jobfile = write_jsonl_jobs(tmp / "jobs.jsonl", jobs)
    run_dir = tmp / "run"
    done = run_cli(
        [
            "run",
            str(jobfile),
            "--run-dir",
            str(run_dir),
            "--base-url",
            server.url,
            "--quiet",
            "--max-attempts",
            "1",
            *MODEL,
            *extra,
        ],
        env=cli_env(),
    )
    return done, run_dir


def check_run(done: Finished, run_dir: Path | None, code: int) -> list[dict[str, Any]]:
    """What every hostile case must hold; returns the log's rows (none without a run dir)."""
    assert done.code == code, done.output
    assert "Traceback" not in done.output, done.output
    assert "\x1b" not in done.output, "a terminal control sequence reached the output"
    for secret in (SECRET_KEY, SECRET_KEY.upper(), SECRET_KEY.lower()):
        assert secret not in done.output
    if code == 2:
        assert done.stderr.strip(), "a refused run says why"
    else:
        ended = [line for line in done.stdout.splitlines() if line.startswith("ended:")]
        assert len(ended) == 1, done.stdout  # the one-line verdict
    if run_dir is None or not run_dir.exists():
        return []
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in (SECRET_KEY, SECRET_KEY.upper()):
                assert secret.encode() not in data, f"the key is in {path}"
    check_log_readable(run_dir)
    for secret in (SECRET_KEY, SECRET_KEY.upper()):
        assert not secret_in_log(run_dir, secret)
    return read_log(run_dir).to_pylist()


def only_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(rows) == 1, rows
    return rows[0]
