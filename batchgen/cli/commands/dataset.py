"""`batchgen export`: a run as a dataset (images and metadata)."""

from __future__ import annotations

import argparse
import sys

from batchgen.cli.common import EXIT_OK, EXIT_USAGE, flags_of
from batchgen.cli.dataset import READS
from batchgen.errors import UsageError
from batchgen.export import Filters, export_run
from batchgen.numbers import plural


def cmd_export(args: argparse.Namespace) -> int:
    flags_of(args, READS)  # the parser offers only what is read here
    filters = Filters(args.status, args.best, args.min_score)
    try:
        done = export_run(args.run_dir, args.to, args.format, filters, shard_images=args.shard_size)
    except UsageError as exc:
        print(f"batchgen export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # --to where no folder can be (a file in the way, no permission);
        # an error while writing the files is export_run's UsageError (it names the file)
        where = exc.filename or args.to
        print(
            f"batchgen export: cannot write {where}: {exc.strerror or exc}; "
            "give --to a folder you can write",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(f"{plural(done.images, 'image')} exported to {args.to} ({args.format})", file=sys.stderr)
    note = done.missing_note()
    if note:
        print(note, file=sys.stderr)
    return EXIT_OK
