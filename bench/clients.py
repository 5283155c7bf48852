"""The clients under test, each run as its own measured process against a running simulator."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.proc import Measured, run_measured

API_KEY = "sk-bench"  # the simulator takes any bearer key; a real key must never be used here
BATCHGEN = Path(sys.executable).with_name("batchgen")
# BENCH_BATCHGEN="python /path/to/patched_entry.py" measures another build of batchgen (a
# branch, a proposed fix) with the same harness; it must take batchgen's own arguments
OVERRIDE_ENV = "BENCH_BATCHGEN"


def batchgen_prefix() -> list[str]:
    override = os.environ.get(OVERRIDE_ENV, "").strip()
    return shlex.split(override) if override else [str(BATCHGEN)]


def client_env() -> dict[str, str]:
    """This environment with the bench key in place of any real one, so a real key cannot
    reach the simulator, a run's files or a report."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["OPENAI_API_KEY"] = API_KEY
    return env


def batchgen_command(
    jobfile: Path,
    base_url: str,
    run_dir: Path,
    *,
    concurrency: int | None = 64,
    extra: Sequence[str] = (),
) -> list[str]:
    """``concurrency=None``: no --concurrency flag (the client picks its own). ``--ledger off``:
    a bench run's simulated spend must not land in the user's real spend ledger."""
    limit = ["--concurrency", str(concurrency)] if concurrency is not None else []
    return [
        *batchgen_prefix(),
        "run",
        str(jobfile),
        "--base-url",
        base_url,
        "--run-dir",
        str(run_dir),
        *limit,
        "--quiet",
        "--yes",
        "--ledger",
        "off",
        *extra,
    ]


def run_batchgen(
    jobfile: Path,
    base_url: str,
    run_dir: Path,
    *,
    concurrency: int | None = 64,
    extra: Sequence[str] = (),
    timeout_s: float = 600.0,
    ok: tuple[int, ...] = (0,),
) -> Measured:
    """``ok``: exit statuses that still count as a run (1 = some jobs failed for good)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = batchgen_command(jobfile, base_url, run_dir, concurrency=concurrency, extra=extra)
    return run_measured(cmd, env=client_env(), timeout_s=timeout_s).check("batchgen run", ok)


def run_baseline(
    name: str, jobfile: Path, base_url: str, out_dir: Path, *, concurrency: int = 64
) -> Measured:
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "bench.baselines",
        name,
        str(jobfile),
        base_url,
        str(out_dir),
        str(concurrency),
    ]
    return run_measured(cmd, env=client_env()).check(f"the {name} baseline")


def count_files(folder: Path) -> int:
    """The images in ``folder``: a metadata sidecar (NAME.png.json, batchgen's default) is
    not an image."""
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.is_file() and p.suffix != ".json")


def instant_client(name: str, jobfile: Path, base_url: str, root: Path, jobs: int) -> Measured:
    """One client of the ``instant`` benchmark, whole process: ``aiohttp`` (the bare loop),
    ``batchgen`` (no flags) or ``no-adapt`` (``--no-adapt --concurrency 64``). Returns its
    measure (wall and CPU seconds); raises unless it wrote one image per job. Its files are
    removed after."""
    out = root / f"instant-{name}"
    # the last client's dirty pages flushed first, or the kernel's write-back throttling
    # bills its files to this one
    os.sync()
    if name == "aiohttp":
        measured = run_baseline("aiohttp", jobfile, base_url, out, concurrency=64)
        images = out
    else:
        flags = {"batchgen": (None, []), "no-adapt": (64, ["--no-adapt"])}[name]
        measured = run_batchgen(jobfile, base_url, out, concurrency=flags[0], extra=flags[1])
        images = out / "images"
    written = count_files(images)
    shutil.rmtree(out, ignore_errors=True)
    if written != jobs:
        msg = f"bench instant: {name} wrote {written} images for {jobs} jobs"
        raise RuntimeError(msg)
    return measured


def compile_bytecode() -> None:
    """Write the bytecode of the batchgen this harness imports (the one measured, unless
    BENCH_BATCHGEN names another), as ``pip install`` does for a wheel: an
    editable checkout run with PYTHONDONTWRITEBYTECODE set (as some shells and CI images do)
    would otherwise compile ~300 modules from source in every measured process, a cost the
    bare loop (its aiohttp installed with bytecode) does not pay and a user does not either."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("batchgen")
    if spec is not None and spec.origin is not None:
        compileall.compile_dir(Path(spec.origin).parent, quiet=1)
