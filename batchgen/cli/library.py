"""``batchgen library add RUN_DIR | ls | gc``: the reuse library (``run --reuse``).

A folder of images named by their sha256 and an SQLite index keyed by each request's full
fingerprint (model, prompt, size, quality, n, every passed-through field, an edit's input
images' hashes). `add` stores a run's successful answers (hard links where possible, else
copies); `ls` lists what is stored by run; `gc` drops entries whose files are gone (and,
with --drop-run, a run's entries) and deletes files no entry names.
Default library: ~/.batchgen/library (--library DIR).
"""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.cli.body import Body

# the flags `library` reads, over its actions (tests/test_cli_help.py)
READS = frozenset({"action", "run_dirs", "drop_run", "library"})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "library",
        help="the reuse library: add a run's images, list, collect garbage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, help="add, ls or gc"
    )
    add = sub.add_parser("add", help="store a run's successful answers")
    add.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories to store")
    ls = sub.add_parser("ls", help="what the library holds, by run")
    gc = sub.add_parser("gc", help="drop dangling entries and unreferenced files")
    gc.add_argument("--drop-run", metavar="RUN_ID_OR_DIR", help="drop this run's entries first")
    for p in (add, ls, gc):
        p.add_argument("--library", metavar="DIR", help="default ~/.batchgen/library")
    parser.set_defaults(func=Body("library", "cmd_library"))
