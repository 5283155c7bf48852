"""``batchgen export RUN --to DIR --format hf|webdataset|parquet|csv|jsonl``: the run's images
as a dataset — a Hugging Face dataset (Parquet shards with an Image column), WebDataset tar
shards, one Parquet table with the bytes, or a CSV/JSONL manifest — each image with its prompt,
job id, model, quality, size, vars, score, defects, cost and latency. Streamed: memory does not
grow with the run. See docs/export.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.cli.body import Body

# the flags `export` reads (tests/test_cli_help.py: its parser offers exactly these)
READS = frozenset({"run_dir", "to", "format", "status", "best", "min_score", "shard_size"})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a run's images as a dataset (hf, webdataset, parquet, csv, jsonl)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", help="the run directory (holds run.json)")
    parser.add_argument("--to", required=True, metavar="DIR", help="a new or empty directory")
    parser.add_argument(
        "--format",
        required=True,
        choices=("hf", "webdataset", "parquet", "csv", "jsonl"),
        help="hf (Parquet shards with an Image column), webdataset (tar "
        "shards), parquet (one table with the bytes), csv or jsonl (manifests)",
    )
    parser.add_argument(
        "--status",
        choices=("ok",),
        default="ok",
        help="which attempts' images (only ok ones have images)",
    )
    parser.add_argument(
        "--best",
        action="store_true",
        help="each job's best image by `batchgen score` (needs scores)",
    )
    parser.add_argument(
        "--min-score", type=float, metavar="S", help="only images scored S or more (needs scores)"
    )
    parser.add_argument(
        "--shard-size",
        type=int,
        default=1000,
        metavar="N",
        help="images per shard (hf, webdataset; default 1000)",
    )
    parser.set_defaults(func=Body("dataset", "cmd_export"))
