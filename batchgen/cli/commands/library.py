"""`batchgen library`: add runs to the reuse library, or drop them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from batchgen.cli.common import EXIT_OK, EXIT_USAGE, flags_of
from batchgen.cli.library import READS
from batchgen.errors import UsageError
from batchgen.library.entries import run_entries
from batchgen.library.index import DEFAULT_LIBRARY, Library


def cmd_library(args: argparse.Namespace) -> int:
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
