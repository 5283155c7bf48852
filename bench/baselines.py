"""What a user would write instead of batchgen, doing the same work per job: POST, decode the
base64 image, write the file.

* ``aiohttp``: a bare loop over one ClientSession and a semaphore (the floor: nothing between
  the socket and the disk but ``json.loads`` and ``b64decode``).
* ``openai``: the official SDK's ``AsyncOpenAI.images.generate`` under an asyncio semaphore.

Run as ``python -m bench.baselines {aiohttp|openai} JOBFILE BASE_URL OUT_DIR [CONCURRENCY]``
in its own process; it prints one JSON line: images written, errors, seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.jobfiles import read_jobs

API_KEY = "sk-bench"


async def bare_aiohttp(
    jobs: list[tuple[str, dict[str, Any]]], base_url: str, out: Path, concurrency: int
) -> tuple[int, int]:
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    written = errors = 0
    url = f"{base_url}/images/generations"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(job_id: str, body: dict[str, Any]) -> None:
            nonlocal written, errors
            async with sem:
                async with session.post(url, json=body) as resp:
                    raw = await resp.read()
                    if resp.status != 200:
                        errors += 1
                        return
                for i, item in enumerate(json.loads(raw)["data"]):
                    (out / f"{job_id}_{i}.png").write_bytes(base64.b64decode(item["b64_json"]))
                    written += 1

        await asyncio.gather(*(one(job_id, body) for job_id, body in jobs))
    return written, errors


async def openai_sdk(
    jobs: list[tuple[str, dict[str, Any]]], base_url: str, out: Path, concurrency: int
) -> tuple[int, int]:
    import openai

    sem = asyncio.Semaphore(concurrency)
    written = errors = 0
    # the SDK's own connection pool (more connections than the semaphore lets through)
    client = openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)

    async def one(job_id: str, body: dict[str, Any]) -> None:
        nonlocal written, errors
        async with sem:
            try:
                result = await client.images.generate(**body)
            except openai.APIError:
                errors += 1
                return
        for i, item in enumerate(result.data or []):
            (out / f"{job_id}_{i}.png").write_bytes(base64.b64decode(item.b64_json or ""))
            written += 1

    async with client:
        await asyncio.gather(*(one(job_id, body) for job_id, body in jobs))
    return written, errors


CLIENTS = {"aiohttp": bare_aiohttp, "openai": openai_sdk}


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5) or argv[0] not in CLIENTS:
        msg = f"usage: python -m bench.baselines {{{'|'.join(CLIENTS)}}} JOBFILE BASE_URL OUT_DIR"
        print(msg + " [CONCURRENCY]", file=sys.stderr)
        return 2
    name, jobfile, base_url, out_dir = argv[:4]
    concurrency = int(argv[4]) if len(argv) == 5 else 64
    jobs = read_jobs(Path(jobfile))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    written, errors = asyncio.run(CLIENTS[name](jobs, base_url, out, concurrency))
    seconds = time.perf_counter() - started
    print(json.dumps({"client": name, "images": written, "errors": errors, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
