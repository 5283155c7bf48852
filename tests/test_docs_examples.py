"""The README and docs/*.md as written: every code block marked to run does, against the
built-in simulator, and every relative link (and its #anchor) resolves.

The convention (stated for readers at the end of the README):

* ```` ```python ```` blocks run, in order, in one namespace per page;
* ```` ```console ```` blocks: each ``$ batchgen …`` line runs in-process (``batchgen.cli.main``)
  and must exit 0, or the code its trailing ``# exit N`` names; the other lines are output,
  shown, not compared (figures move from run to run). A console block holds only ``batchgen``
  commands;
* ```` ```sql ```` blocks run in DuckDB, each statement returning at least one row;
* ```` ```toml ````, ```` ```yaml ```` and ```` ```jsonl ```` blocks must parse;
* ```` ```sh ```` blocks (they need a real key or a long run) and blocks without a language are
  shown only; ```` ```python no-run ```` (any block with ``no-run`` after its language) too.

A page's blocks share one temporary directory holding a copy of ``jobs/``, run in the order
they appear (a report block reads the run an earlier block made). Nothing reaches a real
provider: the OpenAI variables are removed, so a command that is not given ``--provider sim``
has no key and exits 2 before sending.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import yaml

from batchgen.cli.main import build_parser, main

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# guides other branches are writing now: their links pass while the files are missing.
# Remove an entry when its file lands (test_pending_guides_are_still_pending says when).
PENDING_GUIDES: set[str] = set()

# what a page's examples print that shows they did what they say (an example whose `except`
# branch never ran would otherwise pass in silence)
EXPECTED_OUTPUT = {
    "docs/python-api.md": ("stopped: quota", "refused: rpm must be a number > 0"),
}
# files a page's examples must leave behind
EXPECTED_FILES = {
    "README.md": ("runs/demo/run.json", "runs/api-demo/report.md"),
    "docs/python-api.md": ("runs/api-demo/run.json", "runs/api-demo/report.html"),
    "docs/cli.md": ("lighthouse.png",),
    "docs/reports.md": ("runs/demo/report.html", "runs/demo/report.json"),
}
RUNS = {"python", "console", "sql"}
PARSED = {"toml", "yaml", "jsonl"}

# a fenced block, indented in a list item or not: its fence, info string, body, same fence
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)\n"
    r"(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_EXIT = re.compile(r"#\s*exit (\d+)\s*$")


@dataclass(frozen=True, slots=True)
class Block:
    page: str  # relative to the repository
    line: int  # of the opening fence, 1-based
    lang: str
    runs: bool
    body: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for m in _FENCE.finditer(text):
        words = m["info"].split()
        lang = words[0] if words else ""
        indent = len(m["indent"])
        body = "".join(line[indent:] for line in m["body"].splitlines(keepends=True))
        line = text.count("\n", 0, m.start()) + 1
        found.append(Block(rel(path), line, lang, "no-run" not in words[1:], body))
    return found


def runnable(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.runs and b.lang in RUNS]


def commands(block: Block) -> list[tuple[list[str], int]]:
    """The ``$`` lines of a console block (``\\`` continues a line) as argv and exit code."""
    out = []
    lines = iter(block.body.splitlines())
    for line in lines:
        if not line.startswith("$ "):
            continue
        command = line[2:]
        while command.endswith("\\"):
            command = command[:-1] + next(lines, "")
        exit_code = _EXIT.search(command)
        argv = shlex.split(command, comments=True)
        assert argv[0] == "batchgen", f"{block.where}: a console block runs only batchgen: {line}"
        out.append((argv[1:], int(exit_code[1]) if exit_code else 0))
    return out


def run_block(
    block: Block, namespace: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> str:
    if block.lang == "python":
        # blank lines first, so a traceback's line numbers are the page's
        code = "\n" * block.line + block.body
        exec(compile(code, block.page, "exec"), namespace)
        return ""
    if block.lang == "console":
        printed = []
        for argv, expected in commands(block):
            code = main(argv)
            out = capsys.readouterr()
            printed.append(out.out)
            what = f"{block.where}: batchgen {shlex.join(argv)}"
            assert code == expected, f"{what} exited {code}, not {expected}:\n{out.out}{out.err}"
        return "".join(printed)
    with duckdb.connect() as con:
        for statement in duckdb.extract_statements(block.body):
            rows = con.execute(statement).fetchall()
            assert rows, f"{block.where}: no rows from\n{statement}"
    return ""


def test_every_page_with_examples_is_found() -> None:
    pages = {rel(p) for p in PAGES if runnable(p)}
    must = {"README.md", "docs/python-api.md", "docs/failures.md", "docs/quality.md"}
    assert must <= pages, pages
    assert set(EXPECTED_OUTPUT) | set(EXPECTED_FILES) <= pages
    kinds = {b.lang for p in PAGES for b in runnable(p)}
    assert kinds == RUNS, kinds


def test_the_python_api_page_has_its_examples() -> None:
    """What tests/test_readme_api.py pinned: the API's examples (run, run_async, stop and
    resume, errors, report) are there and use the public names."""
    api = [b for b in runnable(ROOT / "docs" / "python-api.md") if b.lang == "python"]
    assert len(api) >= 4 and all("batchgen." in b.body for b in api)
    text = "".join(b.body for b in api)
    for name in ("run(", "run_async(", "resume(", "report(", "raise_for_stop", "ConfigError"):
        assert f"batchgen.{name}" in text or f".{name}" in text, name


@pytest.mark.parametrize("page", [p for p in PAGES if runnable(p)], ids=rel)
def test_the_examples_run_as_written(
    page: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in [k for k in os.environ if k.startswith(("OPENAI_", "BATCHGEN_"))]:
        monkeypatch.delenv(name)
    shutil.copytree(ROOT / "jobs", tmp_path / "jobs")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_example"}
    printed = []
    for block in runnable(page):
        printed.append(run_block(block, namespace, capsys))
        printed.append(capsys.readouterr().out)
    out = "".join(printed)
    name = rel(page)
    for text in EXPECTED_OUTPUT.get(name, ()):
        assert text in out, f"{name}: {text!r} not printed"
    for file in EXPECTED_FILES.get(name, ()):
        assert (tmp_path / file).is_file(), f"{name}: {file} not written"
        assert (tmp_path / file).stat().st_size > 0
    if name == "docs/python-api.md":
        html = (tmp_path / "runs" / "api-demo" / "report.html").read_text(encoding="utf-8")
        assert html.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_the_data_blocks_parse(page: Path) -> None:
    for block in blocks(page):
        if not block.runs or block.lang not in PARSED:
            continue
        try:
            if block.lang == "toml":
                tomllib.loads(block.body)
            elif block.lang == "yaml":
                yaml.safe_load(block.body)
            else:
                for line in block.body.splitlines():
                    json.loads(line)
        except ValueError as exc:  # tomllib, yaml and json errors are all ValueErrors
            pytest.fail(f"{block.where}: the {block.lang} block does not parse: {exc}")


def shown_commands(block: Block) -> list[list[str]]:
    """The batchgen commands of a block shown only: each line of an sh block (after a pipe),
    the ``$`` lines of a block without a language (``\\`` continues a line)."""
    out = []
    lines = iter(block.body.splitlines())
    for line in lines:
        if block.lang == "":
            if not line.startswith("$ "):
                continue
            line = line[2:]
            while line.endswith("\\"):
                line = line[:-1] + next(lines, "")
        argv = shlex.split(line.split(" | ")[-1], comments=True)
        if argv and argv[0] == "batchgen":
            out.append(argv[1:])
    return out


def test_the_commands_shown_only_parse() -> None:
    """The commands that are not run (they need a key, or a long run) still name flags that
    exist, with values of the right type: the CLI's parser accepts each as written."""
    shown = [
        (block, argv)
        for page in PAGES
        for block in blocks(page)
        if block.lang in ("sh", "")
        for argv in shown_commands(block)
    ]
    assert len(shown) >= 30 and {"run", "resume", "plan", "pilot"} <= {a[0] for _, a in shown}
    refused = []
    for block, argv in shown:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                build_parser(argv).parse_args(argv)
        except SystemExit:
            refused.append(f"{block.where}: batchgen {shlex.join(argv)}: {err.getvalue()}")
    assert not refused, "\n".join(refused)


# ---- links ---------------------------------------------------------------------------------
_CODE_SPAN = re.compile(r"(`+).*?\1", re.DOTALL)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """The page without its code: fenced blocks and inline code spans."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, -1, -2 … for
    repeats."""
    seen: dict[str, int] = {}
    out = set()
    for heading in _HEADING.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(path: Path) -> list[str]:
    text = prose(path.read_text(encoding="utf-8"))
    return _LINK.findall(text) + _REF_LINK.findall(text)


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: …
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.is_relative_to(ROOT):
            broken.append(f"{target} (outside the repository)")
            continue
        if not dest.exists():
            if rel(dest) not in PENDING_GUIDES:
                broken.append(target)
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no such heading in {rel(dest)})")
    assert not broken, f"{rel(page)}: broken links: {broken}"


# a repository path a page names in backticks (`batchgen/errors/taxonomy.py`); a dotted name
# after a module (`tests/autopilot_drive.scaled`) is that module's
_REPO_PATH = re.compile(r"`((?:batchgen|tests|bench|docs)/[^`\s*<]+?)/?`")
MADE_BY_A_COMMAND = {"bench/results.json"}  # `make bench` writes it


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_repository_path_a_page_names_exists(page: Path) -> None:
    """docs/failures.md said the taxonomy is in `batchgen/errors.py` after it became a
    package: a path in backticks names a file or folder of the repository."""
    missing = []
    for found in _REPO_PATH.findall(page.read_text(encoding="utf-8")):
        named = found.partition("::")[0]  # a test's node id names its file
        module = re.sub(r"\.[A-Za-z_][\w.]*$", ".py", named)
        there = (ROOT / named).exists() or (ROOT / module).exists()
        if not there and named not in MADE_BY_A_COMMAND:
            missing.append(named)
    assert not missing, f"{rel(page)} names paths that do not exist: {missing}"


def test_the_reports_page_states_the_ratings_the_code_applies() -> None:
    """docs/reports.md rated response time on 3 s / 8 s / 15 s after the report had moved to
    the run's models' usual p95: its table is read back against the thresholds."""
    from batchgen.analyze.ratings import DEFAULT_THRESHOLDS, LatencyBaseline

    text = (ROOT / "docs" / "reports.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| (excellent|good|acceptable) \| ≤ ([\d.]+) × the usual p95 "
        r"\| ≥ (\d+) % \| ≤ \$([\d.]+) \|$",
        text,
        re.MULTILINE,
    )
    assert [r[0] for r in rows] == ["excellent", "good", "acceptable"], rows
    stated = [tuple(float(v) for v in r[1:]) for r in rows]
    t = DEFAULT_THRESHOLDS
    applied = zip(
        LatencyBaseline(1.0, "").bounds(), t.success_rate, t.cost_per_image_usd, strict=True
    )
    assert stated == [(lat, round(ok * 100), usd) for lat, ok, usd in applied]


def test_the_run_directory_page_names_every_column_of_the_log() -> None:
    """docs/run-directory.md lists the log's columns; `endpoint` and `reused_from` were added to
    the schema and not to the page."""
    from batchgen.runlog.schema import SCHEMA

    text = (ROOT / "docs" / "run-directory.md").read_text(encoding="utf-8")
    listed = text.split("## The log: one row per attempt", 1)[1].split("```", 1)[0]
    named = set(re.findall(r"[a-z_]+", listed.replace("input/output token counts", "")))
    tokens = {n for n in SCHEMA.names if n.endswith("_tokens")}  # "input/output token counts"
    assert not set(SCHEMA.names) - tokens - named, set(SCHEMA.names) - tokens - named


def test_the_link_check_finds_links() -> None:
    every = [t for p in PAGES for t in links(p)]
    assert "docs/python-api.md" in every and "docs/storage.md" in every
    assert any("#" in t for t in every)  # anchors are checked too


def test_pending_guides_are_still_pending() -> None:
    """A guide that landed leaves PENDING_GUIDES, so its links are checked again."""
    landed = sorted(g for g in PENDING_GUIDES if (ROOT / g).exists())
    assert not landed, f"remove {landed} from PENDING_GUIDES: the files exist now"


def test_the_readme_stays_short() -> None:
    """The README says what batchgen is, how to install it, the two commands, one run and
    one Python example, and links to docs/: the rest lives in the guides."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert "make demo" in text and "make test" in text
    langs = [b.lang for b in runnable(ROOT / "README.md")]
    assert "python" in langs and "console" in langs
    guides = {t for t in links(ROOT / "README.md") if t.startswith("docs/")}
    every = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} | PENDING_GUIDES
    assert every <= guides, f"guides the README does not link: {sorted(every - guides)}"
