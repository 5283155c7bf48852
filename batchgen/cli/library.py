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
import sys
from pathlib import Path
from typing import Any

from batchgen.cli.common import EXIT_OK, EXIT_USAGE, flags_of
from batchgen.errors import UsageError

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
    parser.set_defaults(func=cmd_library)


def cmd_library(args: argparse.Namespace) -> int:
    # lazy: the CLI builds its parser without batchgen.library.entries (tests/test_startup.py)
    from batchgen.library.entries import run_entries
    from batchgen.library.index import DEFAULT_LIBRARY, Library

    flags_of(args, READS)  # the parser offers only what is read here
    lib = Library(Path(args.library) if args.library else DEFAULT_LIBRARY)
    try:
        lib.check()
    except UsageError as exc:
        print(f"batchgen library: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "add":
        for run_dir in args.run_dirs:
            if not (Path(run_dir) / "run.json").is_file():
                print(
                    f"batchgen library add: {run_dir} is not a run directory (no run.json)",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            added, new = lib.add_entries(run_entries(run_dir))
            print(f"{run_dir}: {added} answer(s) indexed, {new} new image file(s) in {lib.root}")
        return EXIT_OK
    if args.action == "ls":
        for r in lib.runs():
            score = "—" if r["mean_score"] is None else f"{r['mean_score']:.2f}"
            print(
                f"{r['run_id']}  {r['entries']:>6} answers  {r['images']:>6} images  "
                f"mean score {score}  {r['run_dir']}"
            )
        t = lib.totals()
        print(f"{lib.root}: {t['entries']} answers, {t['files']} files, {t['bytes']:,} bytes")
        return EXIT_OK
    removed = lib.gc(drop_run=args.drop_run)
    print(f"{lib.root}: removed {removed['entries']} entries, {removed['files']} files")
    return EXIT_OK
