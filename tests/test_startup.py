"""What `batchgen` loads before it does anything: building the parser imports no provider,
pool, log or simulator code, and a whole `run` never imports pandas (pyarrow would, at its
first conversion of a Python list, if the log's columns were built with ``pa.array``).

These check modules, not timings: a timing test would be flaky on a shared machine, while an
eager import that comes back shows up in ``sys.modules`` every time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from tests.runhelpers import (
    MODEL_FLAGS,
    SECRET_KEY,
    cli_env,
    log_table,
    sim_flags,
    write_jsonl_jobs,
)

pytestmark = pytest.mark.timeout(120)

# what none of the subcommands needs to register its flags (batchgen.sim.flags is light; the
# simulator's server, config and runner are not)
HEAVY = (
    "aiohttp",
    "anyio",
    "pyarrow",
    "pandas",
    "numpy",
    "batchgen.sim.server",
    "batchgen.sim.runner",
    "batchgen.sim.config",
    "matplotlib",
    "PIL",
    "platformdirs",
)


def _in_child(code: str, env: dict[str, str] | None = None) -> Any:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return the JSON it
    prints last."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_building_the_parser_imports_nothing_heavy() -> None:
    loaded = _in_child(
        "import json, sys\n"
        "import batchgen.cli.main as m\n"
        "p = m.build_parser()\n"
        "for argv in (['run', 'x.jsonl', '--sim-rpm', '5'], ['resume', 'runs/x'],\n"
        "             ['plan', 'x.jsonl'], ['report', 'runs/x'], ['jobs', 'r', '--status', 'ok'],\n"
        "             ['sim', '--port', '0']):\n"
        "    p.parse_args(argv)\n"
        f"print(json.dumps([n for n in {HEAVY!r} if n in sys.modules]))\n"
    )
    assert loaded == [], f"building the parser imported {loaded}: import them in cmd_*"


def test_importing_batchgen_loads_none_of_it_until_a_name_is_used() -> None:
    """`import batchgen` is the package's __init__ alone; `batchgen.RunConfig` loads its
    settings module and still none of the session, the log or the simulator."""
    loaded = _in_child(
        "import json, sys\n"
        "import batchgen\n"
        "before = sorted(n for n in sys.modules if n.startswith('batchgen'))\n"
        "batchgen.RunConfig\n"
        f"print(json.dumps([before, [n for n in {HEAVY!r} if n in sys.modules],\n"
        "                   'batchgen.api' in sys.modules]))\n"
    )
    assert loaded == [["batchgen"], [], False]


def test_a_report_of_a_missing_run_dir_is_refused_before_the_analyzers_load() -> None:
    """`batchgen report` checks its RUN_DIR in the parser's half (cli/report.refuse, run by the
    Body) before its body's imports: a typo costs no pandas or matplotlib."""
    loaded = _in_child(
        "import json, sys\n"
        "from batchgen.cli.main import main\n"
        "code = main(['report', '/nonexistent/run'])\n"
        "heavy = ('pandas', 'matplotlib', 'batchgen.reports', 'batchgen.cli.commands.report')\n"
        "print(json.dumps([code, [n for n in heavy if n in sys.modules]]))\n"
    )
    assert loaded == [2, []]


def test_help_of_every_command_still_works_without_them() -> None:
    for argv in ([], ["run"], ["resume"], ["plan"], ["report"], ["jobs"], ["sim"]):
        proc = subprocess.run(
            [sys.executable, "-m", "batchgen", *argv, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, (argv, proc.stderr[-2000:])
        assert proc.stdout.startswith("usage: batchgen"), argv
    run_help = subprocess.run(
        [sys.executable, "-m", "batchgen", "run", "--provider", "sim", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "--sim-latency" in run_help and "--max-cost" in run_help and "--rpm" in run_help


def test_a_users_own_arrow_allocator_wins() -> None:
    code = (
        "import json\n"
        "from batchgen.cli.common import prefer_system_allocator\n"
        "prefer_system_allocator()\n"
        "import pyarrow as pa\n"
        "print(json.dumps(pa.default_memory_pool().backend_name))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    assert _in_child(code, env) == "system"
    for chosen in ("mimalloc", "jemalloc"):
        if chosen in _in_child(
            "import json, pyarrow as pa\nprint(json.dumps(pa.supported_memory_backends()))", env
        ):
            assert _in_child(code, {**env, "ARROW_DEFAULT_MEMORY_POOL": chosen}) == chosen


def test_a_whole_run_never_imports_pandas(tmp_path: Path, make_sim: Any) -> None:
    """The job index and every part of the log are built without pyarrow's pandas shim; what
    pyarrow, pandas and DuckDB read back is still the full log."""
    sim = make_sim(faults={"server": 0.2}, retry_after_s=0.01, seed=3)
    jobs = write_jsonl_jobs(
        tmp_path / "jobs.jsonl", ({"id": f"j{i}", "prompt": f"a kite, no. {i}"} for i in range(25))
    )
    run = tmp_path / "run"
    argv = [
        "run",
        str(jobs),
        "--run-dir",
        str(run),
        *sim_flags(sim),
        *MODEL_FLAGS,
        "--concurrency",
        "4",
        "--max-attempts",
        "5",
        "--yes",
        "--quiet",
    ]
    loaded = _in_child(
        "import json, sys\n"
        "from batchgen.cli.main import main\n"
        f"code = main({argv!r})\n"
        "import pyarrow as pa\n"
        "print(json.dumps({'code': code, 'pandas': 'pandas' in sys.modules,\n"
        "                  'compute': 'pyarrow.compute' in sys.modules,\n"
        "                  'yaml': 'yaml' in sys.modules,\n"
        "                  'drawing': sorted(m for m in ('rich.progress', 'rich.table')\n"
        "                                    if m in sys.modules),\n"
        "                  'allocator': pa.default_memory_pool().backend_name}))\n",
        env={k: v for k, v in cli_env().items() if k != "ARROW_DEFAULT_MEMORY_POOL"},
    )
    # the system allocator hands the log writer's freed memory back (mimalloc keeps it)
    assert loaded == {
        "code": 0,
        "pandas": False,
        "compute": False,
        "yaml": False,  # PyYAML loads only for a YAML spec (jobs/spec.load_spec)
        # --quiet draws no live bar and no quote table (cli/progressbar, cli/quote load them)
        "drawing": [],
        "allocator": "system",
    }
    served = sim.stats
    assert served["server"] > 0  # some retries: rows with nulls and error columns filled
    rows = log_table(run).to_pylist()
    assert len(rows) == served.received
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 25 and all(r["image_paths"] and r["finished_at"] for r in ok)
    failed = [r for r in rows if r["status"] == "error"]
    assert all(r["error_class"] == "server" and r["http_status"] == 500 for r in failed)
    frame = log_table(run).to_pandas()
    assert sorted(frame["job_id"].unique()) == [f"j{i}" for i in sorted(range(25), key=str)]
    assert frame["finished_at"].dt.tz is not None and frame["finished_at"].notna().all()
    log_glob = str(run / "log" / "*.parquet")
    con = duckdb.connect()
    count, oks = con.execute(
        f"SELECT count(*), count(*) FILTER (status = 'ok') FROM read_parquet('{log_glob}')"
    ).fetchone()
    con.close()
    assert (count, oks) == (len(rows), 25)
    index = pq.read_table(run / "state" / "job-index.parquet")
    assert index.num_rows == 25 and index.column("line").to_pylist() == list(range(1, 26))
    assert SECRET_KEY not in (run / "run.json").read_text()


def test_a_report_that_draws_no_chart_loads_no_matplotlib(tmp_path: Path, make_sim: Any) -> None:
    """The terminal and JSON reports of a real run import no matplotlib (~0.2 s of each
    report: the page's charts are its only user); the HTML page still draws its charts."""
    sim = make_sim()
    jobs = write_jsonl_jobs(
        tmp_path / "jobs.jsonl", ({"id": f"j{i}", "prompt": f"a kite, no. {i}"} for i in range(6))
    )
    run = tmp_path / "run"
    argv = ["run", str(jobs), "--run-dir", str(run), *sim_flags(sim), *MODEL_FLAGS, "--yes"]
    loaded = _in_child(
        "import json, sys, contextlib, io\n"
        "from batchgen.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    codes = [main({[*argv, '--quiet']!r})]\n"
        f"    codes += [main(['report', {str(run)!r}, '--format', 'json'])]\n"
        f"    codes += [main(['report', {str(run)!r}])]\n"
        "before = 'matplotlib' in sys.modules\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    codes += [main(['report', {str(run)!r}, '--format', 'html'])]\n"
        "print(json.dumps([codes, before, 'matplotlib' in sys.modules]))\n",
        env=cli_env(),
    )
    assert loaded == [[0, 0, 0, 0], False, True]
    assert "data:image/png;base64," in (run / "report.html").read_text()  # its charts
