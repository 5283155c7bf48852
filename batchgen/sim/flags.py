"""The simulator's command-line flags, apart from its server: ``batchgen run``/``resume``
register ``--sim-*`` when their parser is built, which must not load aiohttp.web or Pillow."""

from __future__ import annotations

import argparse

LOOPBACK = "127.0.0.1"
# how a 429 says when to come back (SimConfig.retry_after_mode): "both" = retry-after-ms
# (exact) + retry-after (whole seconds, rounded up); "ms" / "seconds" one of them; "date" an
# HTTP-date; "none" no hint. Here rather than in config, which the parser must not load.
RETRY_AFTER_MODES: tuple[str, ...] = ("both", "ms", "seconds", "date", "none")


def add_sim_arguments(
    parser: argparse.ArgumentParser, *, prefix: str = "", shown: bool = True
) -> None:
    """Add the simulator's knobs as flags. ``prefix="sim-"`` gives ``--sim-rpm`` etc., for
    commands (like ``run --provider sim``) whose own flags would otherwise collide.
    ``shown=False`` keeps them out of ``--help`` (the group says how to list them)."""
    p = f"--{prefix}"
    described = (
        None
        if shown
        else f"{p}* flags tune the built-in simulator (--provider sim); list them with "
        f"`{parser.prog} --provider sim --help`"
    )
    group = parser.add_argument_group("simulator", described)
    group.add_argument(f"{p}host", default=LOOPBACK, help="interface to bind (default 127.0.0.1)")
    group.add_argument(f"{p}port", type=int, default=8000, help="port; 0 picks a free one")
    group.add_argument(f"{p}seed", type=int, default=0, help="seed for faults, latency, images")
    group.add_argument(f"{p}rpm", type=float, default=None, help="server limit, requests/min")
    group.add_argument(f"{p}ipm", type=float, default=None, help="server limit, images/min")
    group.add_argument(
        f"{p}limit-schedule", default=None, metavar="T:RPM,...",
        help="change the rpm limit at T seconds after start, e.g. '0:60,30:240'",
    )  # fmt: skip
    group.add_argument(
        f"{p}ipm-schedule", default=None, metavar="T:IPM,...",
        help="change the ipm limit at T seconds after start, e.g. '0:120,30:480'",
    )  # fmt: skip
    group.add_argument(
        f"{p}burst", type=float, default=1.0, metavar="SECONDS",
        help="the limits' token buckets hold this many seconds of the rate (default 1)",
    )  # fmt: skip
    group.add_argument(
        f"{p}no-ratelimit-headers", action="store_true",
        help="send no x-ratelimit-* headers, and 429 bodies that name no limit",
    )  # fmt: skip
    group.add_argument(
        f"{p}retry-after-mode", choices=RETRY_AFTER_MODES, default="both",
        help="the 429s' hint: retry-after-ms and retry-after (both, the default), only one "
        "(ms, seconds), an HTTP-date (date) or nothing (none)",
    )  # fmt: skip
    group.add_argument(
        f"{p}max-concurrent", type=int, default=None, metavar="N",
        help="requests processed at once; one more gets a 429 with no hint",
    )  # fmt: skip
    group.add_argument(f"{p}latency", type=float, default=0.0, help="mean latency, seconds")
    group.add_argument(f"{p}latency-jitter", type=float, default=0.0, help="latency std dev, s")
    group.add_argument(
        f"{p}latency-dist", choices=("lognormal", "uniform"), default="lognormal",
        help="latency distribution (default lognormal)",
    )  # fmt: skip
    group.add_argument(
        f"{p}model-latency", action="store_true",
        help="each model's usual latency (gpt-image-1 tens of seconds by quality, dall-e-3 "
        "~10 s, FLUX/Gemini a few) instead of --latency",
    )  # fmt: skip
    group.add_argument(
        f"{p}time-scale", type=float, default=1.0, metavar="X",
        help="multiply every latency by X (0.1: a 30 s model answers in 3 s)",
    )  # fmt: skip
    group.add_argument(
        f"{p}limit-message", choices=("auto", "stated", "plain"), default="auto",
        help="a limit 429's text: OpenAI's naming the limit (stated), 'Rate limit exceeded' "
        "(plain), or stated with headers and 'Too Many Requests' without (auto)",
    )  # fmt: skip
    group.add_argument(
        f"{p}faults", default="", metavar="CLASS=RATE,...",
        help="fault probabilities, e.g. 'server=0.1,content_policy=0.05'",
    )  # fmt: skip
    group.add_argument(
        f"{p}fail-after", default="", metavar="auth=N|quota=N",
        help="every request after the Nth successful one fails with that class",
    )  # fmt: skip
    group.add_argument(
        f"{p}retry-after", type=float, default=1.0, help="Retry-After of rate_limit faults, s"
    )
    group.add_argument(f"{p}hang", type=float, default=60.0, help="seconds a timeout fault hangs")
    group.add_argument(f"{p}tiny", action="store_true", help="64x64 images whatever the size")
    group.add_argument(
        f"{p}image-kb", type=float, default=None, help="images of about this many KB"
    )
    group.add_argument(f"{p}extra-models", default="", help="more model names, comma-separated")
    group.add_argument(
        f"{p}batch-seconds", type=float, default=None, metavar="S",
        help="Batch API: seconds a batch takes from creation to completed (default 1)",
    )  # fmt: skip
    group.add_argument(
        f"{p}batch-faults", default="", metavar="fail=K,expire=K",
        help="Batch API: the K-th batch created fails validation / expires half-way",
    )  # fmt: skip
    group.add_argument(
        f"{p}api-key-env", default=None, metavar="VAR",
        help="accept only the key in this environment variable (default: any bearer key)",
    )  # fmt: skip
    if not shown:
        for action in group._group_actions:
            action.help = argparse.SUPPRESS
