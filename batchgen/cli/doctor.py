"""``batchgen doctor [JOBS]``: check everything a run needs before it spends anything — each
endpoint's network, TLS, key and models, the rate limits it announces, the job file against its
models, the run directory. --probe sends one cheapest real request per endpoint (after the
quote and a confirmation).

Exit status: 0 a run would start; 2 it would not (each ✗ names its fix).
"""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.cli.body import Body
from batchgen.cli.common import JOB_DEFAULT_FLAGS, add_job_defaults

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
    parser.set_defaults(func=Body("doctor", "cmd_doctor"))
