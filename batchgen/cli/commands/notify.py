"""What --notify, --on-end and --metadata wrap around a run's observer."""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.metadata import apply
from batchgen.notify import NotifyingObserver, check_urls
from batchgen.provider.endpoints import load_providers


def with_notify(observer: Any, args: argparse.Namespace) -> Any:
    """``observer`` wrapped to send the end message, when --notify or --on-end was given;
    raises UsageError for a URL apprise cannot use (before anything is sent)."""
    urls = list(getattr(args, "notify", None) or [])
    on_end = getattr(args, "on_end", None)
    mode = getattr(args, "metadata", None) or "none"
    if not urls and not on_end and mode == "none":
        return observer

    check_urls(urls)
    hide = {getattr(args, "api_key_env", None) or "OPENAI_API_KEY"}
    if on_end and getattr(args, "providers", None):
        hide.update(spec.key_env for spec in load_providers(args.providers))
    hooks = [] if mode == "none" else [_metadata_hook(observer, mode)]
    return NotifyingObserver(observer, urls, on_end, hide_env=sorted(hide), hooks=hooks)


def _metadata_hook(observer: Any, mode: str) -> Any:
    def hook(rundir: Any, result: Any) -> None:
        last = rundir.manifest().last_session
        # a --ray run's driver session logs nothing: its shards' sessions hold the images
        tally = apply(rundir.path, mode, last.session if last and not last.shards else None)
        if tally.sidecars or tally.embedded:
            observer.say(tally.describe(mode))
        for error in tally.errors[:3]:
            observer.warn(f"metadata: {error}")

    return hook
