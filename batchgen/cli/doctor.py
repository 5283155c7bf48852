"""``batchgen doctor [JOBS]``: check everything a run needs before it spends anything — each
endpoint's network, TLS, key and models, the rate limits it announces, the job file against its
models, the run directory. --probe sends one cheapest real request per endpoint (after the
quote and a confirmation).

Exit status: 0 a run would start; 2 it would not (each ✗ names its fix).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from batchgen.cli.common import EXIT_USAGE, JOB_DEFAULT_FLAGS, add_job_defaults, flags_of
from batchgen.errors import UsageError

# the flags `doctor` reads (tests/test_cli_help.py: its parser offers exactly these)
READS = JOB_DEFAULT_FLAGS | frozenset(
    {
        "jobfile",
        "base_url",
        "api_key_env",
        "providers",
        "run_dir",
        "prices",
        "price_per_image",
        "rpm",
        "ipm",
        "concurrency",
        "adaptive",
        "timeout",
        "probe",
        "yes",
        "format",
    }
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check endpoints, key, models, limits and run directory before a run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("jobfile", nargs="?", help="the job file a run would send (optional)")
    conn = parser.add_argument_group("provider (as for run)")
    conn.add_argument("--base-url", help="API base URL (default: $OPENAI_BASE_URL, else OpenAI)")
    conn.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="environment variable holding the API key (default OPENAI_API_KEY)",
    )
    conn.add_argument("--providers", metavar="FILE", help="a TOML file of endpoints")
    add_job_defaults(parser)
    parser.add_argument("--run-dir", help="where the run would go (default runs/)")
    parser.add_argument("--prices", metavar="FILE", help="a price table over the built-in one")
    parser.add_argument(
        "--price-per-image",
        type=float,
        metavar="USD",
        help="price of a model missing from the price table",
    )
    parser.add_argument("--rpm", type=float, help="the run's --rpm (where the autopilot starts)")
    parser.add_argument("--ipm", type=float, help="the run's --ipm")
    parser.add_argument("--concurrency", type=int, help="the run's --concurrency")
    parser.add_argument(
        "--no-adapt",
        dest="adaptive",
        action="store_false",
        default=True,
        help="the run's --no-adapt",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds for each network check (default 10)"
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="send one cheapest real request per endpoint (costs money: the "
        "quote is shown and confirmed first)",
    )
    parser.add_argument("--yes", action="store_true", help="confirm --probe's quote")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="text (default) or json"
    )
    parser.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    # lazy: the CLI builds its parser without batchgen.doctor (tests/test_startup.py)
    from batchgen.doctor import DoctorOptions, run_diagnose
    from batchgen.doctor.render import to_json, to_text

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
