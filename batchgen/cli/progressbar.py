"""The live progress bar on a terminal: rich's Progress with one column, the line that
:class:`batchgen.cli.progress.Progress` builds for the console's width at each refresh.
Its own module so that a run without a terminal or with --quiet never loads rich.progress."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import Progress as RichProgress
from rich.progress import ProgressColumn, Task
from rich.text import Text


def live_bar(console: Console, line: Callable[[], Text]) -> RichProgress:
    """rich's live display of ``line`` (called at each refresh), not yet started."""
    return RichProgress(_LineColumn(line), console=console, refresh_per_second=4, expand=True)


class _LineColumn(ProgressColumn):
    """The whole line in one column, built for the console's width at each refresh."""

    def __init__(self, line: Callable[[], Text]) -> None:
        super().__init__()
        self.line = line

    def render(self, task: Task) -> Text:
        return self.line()
