"""``batchgen models [MODEL]``: the models the price table knows and what one image costs, by
quality and size, the Batch API's rate beside it; the judges' chat prices below. The same
table `plan` quotes from (``--prices FILE`` merges yours over it)."""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.cli.body import Body

READS = frozenset({"model", "prices", "output_format"})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the models of the price table and what one image costs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", nargs="?", help="show only this model (default: every one)")
    parser.add_argument(
        "--prices",
        metavar="FILE",
        help="a TOML price table merged over the shipped one (add models, change prices)",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        dest="output_format",
        help="text (default) or json (one object per model)",
    )
    parser.set_defaults(func=Body("models", "cmd_models"))
