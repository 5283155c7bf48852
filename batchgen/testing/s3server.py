"""A real S3 API for the --images-to tests and benchmarks: moto's server mode (``moto_server``,
from ``moto[server]`` in the test extra), started as a subprocess on a free loopback port, with
credentials made up for the test. Not a mock of the client: s3fs, botocore and boto3 speak
HTTP to it as they would to AWS.

    with s3_server() as s3:                 # s3.env: AWS_ENDPOINT_URL + credentials
        s3.make_bucket("shots")
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# made-up credentials: the tests look for them in every file, row and output
ACCESS_KEY_ID = "AKIASTORAGETEST0042"
SECRET_ACCESS_KEY = "storage-secret-k3y/Abc+0123456789xyz"
SESSION_TOKEN = "storage-session-token-0123456789abcdef"
STORAGE_SECRETS = (ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN)


@dataclass
class S3Server:
    url: str
    env: dict[str, str] = field(default_factory=dict)

    def client(self) -> Any:
        # lazy: boto3 is a test dependency, not the package's
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def make_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """key → content of every object under the prefix."""
        client = self.client()
        out = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                out[key] = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return out

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _moto_server() -> list[str]:
    exe = Path(sys.executable).with_name("moto_server")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("moto_server")
    if found is None:
        raise FileNotFoundError("moto_server (pip install 'moto[server]')")
    return [found]


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*_moto_server(), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)  # a poll interval, not a timing assumption
        env = {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_SESSION_TOKEN": SESSION_TOKEN,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        yield S3Server(url, env)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def with_s3(env: dict[str, str], s3: S3Server) -> dict[str, str]:
    """A CLI environment with the test's S3 endpoint and credentials (and no others)."""
    clean = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    return {**clean, **s3.env}


def scan_for(root: Path, needles: tuple[str, ...]) -> list[str]:
    """Files under ``root`` holding any of ``needles`` (bytes, any case)."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            hits += [f"{path}: {n}" for n in needles if n.lower().encode() in data]
    return hits


__all__ = ["STORAGE_SECRETS", "S3Server", "s3_server", "scan_for", "with_s3"]
