"""What --notify, --on-end and --metadata wrap around a run's observer."""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.metadata import LiveSidecars, apply
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


class _MetadataHook:
    """At a session's end, the records of its images (``apply``). With ``sidecar``, a live
    session's sidecars are written as its log parts are (``live``, the log writer's
    ``after_part``): its end only says the tally."""

    def __init__(self, observer: Any, mode: str) -> None:
        self.observer = observer
        self.mode = mode
        self._live: dict[int, LiveSidecars] = {}

    def live(self, run_dir: Any, run_id: str, session: int) -> LiveSidecars | None:
        if self.mode != "sidecar":
            return None  # embedding rewrites the images: after the session, as before
        self._live[session] = LiveSidecars(run_dir, run_id, session)
        return self._live[session]

    def __call__(self, rundir: Any, result: Any) -> None:
        last = rundir.manifest().last_session
        live = self._live.pop(last.session, None) if last and not last.shards else None
        if live is not None:
            tally = live.tally
        else:
            # a --ray run's driver session logs nothing: its shards' sessions hold the images
            tally = apply(
                rundir.path, self.mode, last.session if last and not last.shards else None
            )
        if tally.sidecars or tally.embedded:
            self.observer.say(tally.describe(self.mode))
        for error in tally.errors[:3]:
            self.observer.warn(f"metadata: {error}")


def _metadata_hook(observer: Any, mode: str) -> Any:
    return _MetadataHook(observer, mode)
