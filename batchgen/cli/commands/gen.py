"""`batchgen gen`: one prompt, its images saved where asked."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from batchgen.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    flags_of,
    output_problem,
)
from batchgen.cli.gen import READS
from batchgen.cli.money_args import confirm
from batchgen.cli.session import (
    ConsoleObserver,
    make_console,
    print_ending,
    redacted_argv,
    usage_errors,
)
from batchgen.config import RunConfig
from batchgen.session.start import start_run


def cmd_gen(args: argparse.Namespace) -> int:
    flags = flags_of(args, READS)

    console, err = make_console(), make_console(stderr=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir = Path(args.run_dir or Path("runs") / f"gen-{stamp}")
    if (run_dir / "run.json").exists():
        err.print(
            f"batchgen gen: {run_dir} already holds a run; pick another --run-dir "
            "(or leave it out for a new one)",
            markup=False,
        )
        return EXIT_USAGE
    if not args.prompt.strip():
        err.print("batchgen gen: the prompt is empty; say what the image should show")
        return EXIT_USAGE
    # before the request is paid for: an -o the copy cannot reach was a traceback after it
    problem = output_problem(args.output) if args.output else None
    if problem is None:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = f"cannot make {run_dir}: {exc.strerror or exc}; pick another --run-dir"
    if problem is not None:
        err.print(f"batchgen gen: {problem}", markup=False)
        return EXIT_USAGE
    job_file = run_dir / "prompt.jsonl"
    job_file.write_text(json.dumps({"id": "gen", "prompt": args.prompt}) + "\n", "utf-8")
    for name in ("prompt", "output", "run_dir"):
        flags.pop(name, None)
    cfg = RunConfig.build({**flags, "image_checks": False})
    observer = _GenObserver(console, err, args)
    code = usage_errors(
        err,
        "gen",
        lambda: (
            start_run(
                str(job_file),
                cfg,
                run_dir=run_dir,
                observer=observer,
                argv=redacted_argv(),
            ).exit_code
        ),
    )
    return _saved(console, err, run_dir, args.output, code)


def _saved(console: Console, err: Console, run_dir: Path, output: str | None, code: int) -> int:
    images = sorted((run_dir / "images").glob("gen_*")) if (run_dir / "images").is_dir() else []
    for image in images:
        console.print(f"saved: {image}", markup=False)
    if images and output:
        target = Path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        for k, image in enumerate(images, 1):
            name = target if len(images) == 1 else target.with_name(f"{target.stem}_{k}")
            dest = name if name.suffix else name.with_suffix(image.suffix)
            shutil.copyfile(image, dest)
            console.print(f"copied to {dest}", markup=False)
    if code == EXIT_OK and not images:
        err.print(f"batchgen gen: no image was saved; see `batchgen report {run_dir}`")
        return 1
    return code


class _GenObserver:
    """The CLI's observer, quieter: no quote table and no run summary for one image; the
    ending lines only when the run stopped or failed."""

    def __init__(self, console: Console, err: Console, args: argparse.Namespace) -> None:
        self._inner = ConsoleObserver(console, err, args)
        self.args = args

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def confirm(self, checked: Any) -> bool:
        for model in checked.quote.unknown_models:
            self._inner.warn(
                f"warning: no price for model {model!r}: its cost is logged as "
                "unknown (add it with --prices FILE)"
            )
        return confirm(checked.quote, self.args)

    def session_ended(self, rundir: Any, result: Any, budget: Any, *, summary: bool) -> None:
        if result.exit_code != EXIT_OK:
            print_ending(self._inner.console, rundir, result, budget)
        else:
            cost = result.tally.cost_usd
            self._inner.say(f"cost ${cost:.4f}; run directory {rundir.path}")
