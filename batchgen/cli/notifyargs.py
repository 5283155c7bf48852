"""``--notify URL`` and ``--on-end CMD`` of run and resume (batchgen.notify). Their values stay
out of run.json (a notification URL often holds a token): :func:`flags_of` leaves them out and
the recorded command line masks them."""

from __future__ import annotations

import argparse

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
