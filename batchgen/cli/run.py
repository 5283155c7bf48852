"""``batchgen run JOBFILE``: validate, quote, then run every job into a new run directory.

Exit status: 0 every job succeeded; 1 some jobs failed; 2 bad usage or job file (nothing was
sent); 3 stopped early with jobs pending (auth, quota, budget, interrupt) — `batchgen resume`.
"""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.cli.batch import add_batch_arguments
from batchgen.cli.body import Body
from batchgen.cli.common import (
    BATCH_FLAGS,
    JOB_DEFAULT_FLAGS,
    SESSION_FLAGS,
    STORAGE_FLAGS,
    add_job_defaults,
    add_ray_argument,
    add_session_arguments,
)
from batchgen.cli.notifyargs import NOTIFY_FLAGS, add_notify_arguments
from batchgen.cli.pilot import APPLY_READS, add_apply_arguments
from batchgen.cli.score import SCORER_FLAGS, add_scorer_arguments

# the flags `run` reads (tests/test_cli_help.py: its parser offers exactly these)
READS = (
    frozenset({"jobfile", "max_jobs", "run_dir", "from_pilot", "ray"})
    | JOB_DEFAULT_FLAGS
    | SESSION_FLAGS
    | STORAGE_FLAGS
    | BATCH_FLAGS
    | APPLY_READS
    | SCORER_FLAGS
    | NOTIFY_FLAGS
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a job file of prompts",
        description=__doc__,
        usage="%(prog)s JOBFILE [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "jobfile",
        help="JSONL, OpenAI batch JSONL, CSV, plain text job file or YAML spec; - reads it "
        "from stdin (kept in the run directory as stdin-jobs.<ext>, for resume)",
    )
    parser.add_argument(
        "--max-jobs",
        metavar="N",
        type=int,
        help="refuse (exit 2, nothing sent) a job file or spec of more than N jobs",
    )
    parser.add_argument(
        "--run-dir", help="where images, log and run.json go (default runs/<stem>-<UTC time>)"
    )
    add_ray_argument(
        parser,
        "spread the run over a Ray cluster, shards of the job file on its workers under one "
        "shared limit",
        "JOBFILE",
    )
    add_job_defaults(parser)
    add_session_arguments(parser, resume=False, storage=True)
    add_notify_arguments(parser)

    add_batch_arguments(parser, resume=False)

    add_apply_arguments(parser, from_pilot=True)
    add_scorer_arguments(parser, for_resume=True)
    parser.set_defaults(func=Body("run", "cmd_run"))
