"""``batchgen jobs RUN_DIR --status failed|pending|ok``: the matching jobs as a JSONL job file,
to re-drive them elsewhere or inspect them (each line: id + the request body as sent)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from batchgen.cli.common import EXIT_OK, EXIT_USAGE
from batchgen.jobs import iter_jobs
from batchgen.jobs.inputs import portable_body
from batchgen.runlog.rundir import RunDir, RunDirError

# states as batchgen.runlog.state names them (imported lazily: it loads pyarrow.dataset)
_STATES = {"ok": {"done"}, "failed": {"failed", "retryable_failed"}}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "jobs",
        help="export a run's ok / failed / pending jobs as a JSONL job file",
        description=__doc__,
    )
    parser.add_argument("run_dir")
    parser.add_argument(
        "--status",
        choices=("ok", "failed", "pending"),
        required=True,
        help="pending = not ok and not failed (never sent, stopped, cancelled)",
    )
    parser.add_argument("-o", "--output", help="file to write (default: standard output)")
    parser.set_defaults(func=cmd_jobs)


def cmd_jobs(args: argparse.Namespace) -> int:
    rundir = RunDir(args.run_dir)
    try:
        manifest = rundir.load(strict=True)
    except RunDirError as exc:
        print(f"batchgen jobs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    job_file = Path(manifest["job_file"])
    if not job_file.exists():
        print(f"batchgen jobs: the run's job file {job_file} is gone", file=sys.stderr)
        return EXIT_USAGE
    from batchgen.runlog.state import job_states

    table = job_states(rundir.path, with_inflight=False).table
    state_of = dict(zip(table["job_id"].to_pylist(), table["state"].to_pylist(), strict=True))
    finished = _STATES["ok"] | _STATES["failed"]

    def wanted(state: str | None) -> bool:
        if args.status == "pending":
            return state not in finished
        return state in _STATES[args.status]

    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    count = 0
    try:
        for job in iter_jobs(job_file, manifest["settings"].get("defaults") or {}):
            if wanted(state_of.get(job.id)):
                body = portable_body(job.body, job.inputs)  # an edit's photos: absolute paths
                out.write(json.dumps({"id": job.id, **body}, ensure_ascii=False) + "\n")
                count += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(
        f"{count} {args.status} job(s)" + (f" written to {args.output}" if args.output else ""),
        file=sys.stderr,
    )
    return EXIT_OK
