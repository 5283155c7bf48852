"""``--notify URL`` and ``--on-end CMD`` of run and resume (batchgen.notify). Their values stay
out of run.json (a notification URL often holds a token): :func:`flags_of` leaves them out and
the recorded command line masks them."""

from __future__ import annotations

import argparse
from typing import Any

NOTIFY_FLAGS = frozenset({"notify", "on_end", "metadata"})


def add_notify_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("when the session ends (docs/notify.md, docs/metadata.md)")
    group.add_argument(
        "--metadata",
        choices=("sidecar", "embed", "none"),
        default="sidecar",
        help="each saved image's prompt, model, settings, run and job id and cost: sidecar "
        "(default) NAME.png.json beside it; embed: inside the file (PNG iTXt, JPEG/WebP XMP) "
        "unless it carries a C2PA manifest, which would break (a sidecar then); none",
    )
    group.add_argument(
        "--notify",
        action="append",
        metavar="URL",
        help="send a short message (outcome, counts, cost; never the key) to this apprise URL "
        "when the session ends: json://host:port/path, slack://…, ntfys://topic, mailto://…; "
        "repeatable. Needs pip install 'batchgen[notify]'",
    )
    group.add_argument(
        "--on-end",
        metavar="CMD",
        help="run CMD in a shell when the session ends, with BATCHGEN_OUTCOME, "
        "BATCHGEN_EXIT_CODE, BATCHGEN_SUCCEEDED, BATCHGEN_FAILED, BATCHGEN_PENDING, "
        "BATCHGEN_COST_USD, BATCHGEN_RUN_DIR ... set (the API key's variable is not passed on)",
    )


def with_notify(observer: Any, args: argparse.Namespace) -> Any:
    """``observer`` wrapped to send the end message, when --notify or --on-end was given;
    raises UsageError for a URL apprise cannot use (before anything is sent)."""
    urls = list(getattr(args, "notify", None) or [])
    on_end = getattr(args, "on_end", None)
    mode = getattr(args, "metadata", None) or "none"
    if not urls and not on_end and mode == "none":
        return observer
    # lazy: the CLI builds its parser without batchgen.notify (tests/test_startup.py)
    from batchgen.notify import NotifyingObserver, check_urls

    check_urls(urls)
    hide = {getattr(args, "api_key_env", None) or "OPENAI_API_KEY"}
    if on_end and getattr(args, "providers", None):
        # lazy: the CLI builds its parser without batchgen.provider.endpoints
        from batchgen.provider.endpoints import load_providers

        hide.update(spec.key_env for spec in load_providers(args.providers))
    hooks = [] if mode == "none" else [_metadata_hook(observer, mode)]
    return NotifyingObserver(observer, urls, on_end, hide_env=sorted(hide), hooks=hooks)


def _metadata_hook(observer: Any, mode: str) -> Any:
    def hook(rundir: Any, result: Any) -> None:
        # lazy: the CLI builds its parser without batchgen.metadata.apply (tests/test_startup.py)
        from batchgen.metadata import apply

        last = rundir.manifest().last_session
        # a --ray run's driver session logs nothing: its shards' sessions hold the images
        tally = apply(rundir.path, mode, last.session if last and not last.shards else None)
        if tally.sidecars or tally.embedded:
            observer.say(tally.describe(mode))
        for error in tally.errors[:3]:
            observer.warn(f"metadata: {error}")

    return hook
