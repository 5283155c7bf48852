"""The ``--images-to`` URL, checked before anything starts (no fsspec import: the CLI's parser
and the API's keyword check call it)."""

from __future__ import annotations

from urllib.parse import urlsplit


def check_url(url: str) -> str:
    """The URL as given, refused when it carries a credential (``s3://KEY:SECRET@bucket``):
    it would be stored in run.json and printed. Returns it without a trailing slash."""
    if "://" not in url:
        msg = f"--images-to takes a URL (s3://bucket/prefix/, gs://..., file:///path), got {url!r}"
        raise ValueError(msg)
    parts = urlsplit(url)
    if parts.username or parts.password or "@" in parts.netloc:
        msg = (
            "--images-to must not carry a credential: put it in the environment or a profile "
            "(AWS_ACCESS_KEY_ID / AWS_PROFILE, GOOGLE_APPLICATION_CREDENTIALS, ...)"
        )
        raise ValueError(msg)
    if parts.query:
        msg = "--images-to must not carry a query (a signed URL's token would be stored)"
        raise ValueError(msg)
    return url.rstrip("/")
