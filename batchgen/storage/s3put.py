"""The PUT of an image to S3, from the pool's worker threads: a botocore client (botocore comes
with s3fs) rather than s3fs's own call, which hands every request to fsspec's one I/O thread.
Measured on this project's 2-core machine against moto's server, 300 × 256 KB from 16 threads:
s3fs 46–58 images/s, botocore 79–91 (docs/bench.md, "Upload to an S3 server").

The client is built from the s3fs filesystem fsspec opened for the URL, with its key, secret,
token, endpoint and client options, or, where those are unset, botocore's own chain
(environment, AWS_PROFILE, the config and credentials files, an instance role): the same places
s3fs reads. An s3fs set up in a way this does not copy (anonymous, requester pays, extra PUT
arguments, an explicit session) keeps s3fs's own call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# connections of the one client the worker threads share (anyio's pool has 40 threads)
POOL_CONNECTIONS = 64

Put = Callable[[str, bytes], None]


def botocore_put(fs: Any) -> Put | None:
    """A ``put(path, data)`` for an s3fs filesystem (``bucket/key`` paths), or None."""
    try:  # lazy: botocore/s3fs come with the optional extra batchgen[s3]
        import botocore.session
        import s3fs
        from botocore.config import Config
    except ImportError:
        return None
    if not isinstance(fs, s3fs.S3FileSystem):
        return None
    if fs.anon or fs.requester_pays or fs.s3_additional_kwargs or fs.session is not None:
        return None
    if set(fs.kwargs) - {"profile"}:
        return None
    session = botocore.session.Session(profile=fs.kwargs.get("profile"))
    client_kwargs = dict(fs.client_kwargs)
    config = Config(**{"max_pool_connections": POOL_CONNECTIONS, **fs.config_kwargs})
    client = session.create_client(
        "s3",
        aws_access_key_id=fs.key,
        aws_secret_access_key=fs.secret,
        aws_session_token=fs.token,
        endpoint_url=client_kwargs.pop("endpoint_url", None) or fs.endpoint_url,
        use_ssl=fs.use_ssl,
        config=config,
        **client_kwargs,
    )

    def put(path: str, data: bytes) -> None:
        bucket, _, key = path.partition("/")
        client.put_object(Bucket=bucket, Key=key, Body=data)

    return put
