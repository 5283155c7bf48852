"""The progress line fits the terminal: at 80 columns the count, rate, cost and ETA stay (less
important parts go first), at 130 nothing is cut, the bar shows only when there is room; and
the end-of-run summary wraps recommendations rather than cutting them with "…"."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from batchgen.cli.progress import Progress
from batchgen.runner.control import PoolTally

STATUS = "985,000 req/min, 12/256 in flight"  # as the limiter says it


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _tally(ok: int, failed: int, cost: float) -> PoolTally:
    t = PoolTally(ok_jobs=ok, failed_jobs=failed, images=ok, cost_usd=cost, taken=ok + failed)
    return t


def _shown(width: int, *, failed: int = 3, status: str = STATUS) -> str:
    console = Console(width=width, file=io.StringIO(), force_terminal=True, color_system=None)
    clock = Clock()
    bar = Progress(console, total=3000, quiet=False, status=lambda: status, now=clock)
    bar._start = clock.t
    clock.t += 94.0  # 1:34 in
    tally = _tally(1078, failed, 0.41234)
    bar.observe(tally)
    line = bar.line(tally, console.width)
    console.print(line)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    lines = out.rstrip("\n").splitlines()
    assert len(lines) == 1, out
    assert len(lines[0]) <= width, (len(lines[0]), lines[0])
    return lines[0]


@pytest.mark.parametrize("width", [60, 80, 100, 130])
def test_the_count_rate_cost_and_eta_survive_every_width(width: int) -> None:
    line = _shown(width)
    assert "1,081/3,000" in line
    assert "688 img/min" in line  # 1078 images in 94 s
    assert "$0.4123" in line
    assert "ETA 2:46" in line  # 1,919 left at 1,081 per 94 s
    assert "…" not in line


def test_80_columns_drop_the_least_important_parts_first() -> None:
    line = _shown(80)
    assert "failed 3" in line  # a failure is news
    assert "in flight" not in line
    assert "━" not in line and "batchgen" not in line  # no room left for a bar


def test_130_columns_cut_nothing_essential_and_draw_a_bar() -> None:
    line = _shown(130)
    for part in ("ok 1,078", "failed 3", "pending 1,919", "1:34", "limits 985,000 req/min"):
        assert part in line, line
    assert line.startswith("━")  # a bar, as there is room
    wide = _shown(200)
    assert "12/256 in flight" in wide and wide.startswith("batchgen ━")


def test_no_failure_no_failed_part() -> None:
    assert "failed" not in _shown(130, failed=0)


def test_the_plain_line_formats_numbers_for_people() -> None:
    out = io.StringIO()
    console = Console(width=200, file=out, force_terminal=False)
    clock = Clock()
    bar = Progress(console, total=3000, quiet=False, status=lambda: STATUS, now=clock)
    with bar:
        clock.t += 94.0
        bar.update(_tally(1078, 3, 0.41234))
    text = out.getvalue()
    assert "[1:34] 1,081/3,000 · ok 1,078 · failed 3 · pending 1,919 · 688 img/min" in text
    assert "ETA 2:46" in text and "$0.4123" in text


def test_the_redraw_thread_never_asks_the_limiter() -> None:
    # the limiter reads the event loop's clock: rich redraws from its own thread, so the line
    # is drawn from what update() took on the loop, never by calling the status there
    asked = []
    console = Console(width=130, file=io.StringIO(), force_terminal=True, color_system=None)
    bar = Progress(console, total=10, quiet=False, status=lambda: asked.append(1) or "1 req/min")
    tally = _tally(3, 0, 0.01)
    bar.observe(tally)
    for _ in range(5):
        assert "limits 1 req/min" in bar.line(tally, 130).plain
    assert len(asked) == 1


def test_the_live_bar_draws_the_line_on_a_terminal() -> None:
    # the live bar (cli/progressbar, loaded only on a terminal without --quiet) shows the
    # same line as Progress.line, with the final counts when the session ends
    out = io.StringIO()
    console = Console(width=130, file=out, force_terminal=True, color_system=None)
    with Progress(console, total=10, quiet=False) as bar:
        assert bar._bar is not None
        bar.update(_tally(4, 1, 0.01))
    text = out.getvalue()
    assert "batchgen " in text and "5/10" in text and "ok 4" in text and "failed 1" in text
