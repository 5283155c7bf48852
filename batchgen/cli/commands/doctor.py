"""`batchgen doctor`: diagnose a run or a connection."""

from __future__ import annotations

import argparse
import sys

from batchgen.cli.common import EXIT_USAGE, flags_of
from batchgen.cli.doctor import READS
from batchgen.doctor import DoctorOptions, run_diagnose
from batchgen.doctor.render import to_json, to_text
from batchgen.errors import UsageError


def cmd_doctor(args: argparse.Namespace) -> int:
    flags_of(args, READS)  # the parser offers only what is read here

    if args.providers and args.base_url:
        print("batchgen doctor: --providers names every endpoint: drop --base-url", file=sys.stderr)
        return EXIT_USAGE
    opts = DoctorOptions(
        jobfile=args.jobfile,
        providers=args.providers,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        defaults={k: getattr(args, k) for k in ("model", "size", "quality", "n")},
        prices=args.prices,
        price_per_image=args.price_per_image,
        run_dir=args.run_dir,
        rpm=args.rpm,
        ipm=args.ipm,
        concurrency=args.concurrency,
        adaptive=args.adaptive,
        timeout=args.timeout,
        probe=args.probe,
    )

    def confirm(text: str) -> bool:
        if args.yes:
            return True
        if not sys.stdin.isatty():
            print(f"{text}: not confirmed (add --yes when no one can answer)", file=sys.stderr)
            return False
        answer = input(f"{text}. Send? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    try:
        diagnosis = run_diagnose(opts, confirm)
    except UsageError as exc:
        print(f"batchgen doctor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(to_json(diagnosis) if args.format == "json" else to_text(diagnosis))
    return diagnosis.exit_code
