"""A session observer that passes everything to the one it wraps, and when a session ends
(live or through the Batch API) runs the caller's hooks (``--metadata``), then sends the end
message: ``--notify`` and ``--on-end``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from batchgen.notify.message import EndMessage, end_message
from batchgen.notify.send import notify, run_on_end


class NotifyingObserver:
    def __init__(
        self,
        inner: Any,
        urls: Sequence[str] = (),
        on_end: str | None = None,
        *,
        hide_env: Sequence[str] = (),
        warn: Callable[[str], None] | None = None,
        hooks: Sequence[Callable[[Any, Any], None]] = (),
    ) -> None:
        self.inner = inner
        self.hooks = list(hooks)
        self.urls = list(urls)
        self.on_end = on_end
        self.hide_env = tuple(hide_env)
        self._warn = warn or inner.warn
        self.sent: list[EndMessage] = []

    def say(self, text: str, style: str | None = None) -> None:
        self.inner.say(text, style)

    def warn(self, text: str) -> None:
        self.inner.warn(text)

    def progress(self, total: int, budget: Any, status: Callable[[], str]) -> Any:
        return self.inner.progress(total, budget, status)

    def confirm(self, checked: Any) -> bool:
        return bool(self.inner.confirm(checked))

    def session_ended(self, rundir: Any, result: Any, budget: Any, *, summary: bool) -> None:
        self.inner.session_ended(rundir, result, budget, summary=summary)
        self._ended(rundir, result)

    def batch_ended(self, rundir: Any, result: Any, outcome: Any, budget: Any) -> None:
        self.inner.batch_ended(rundir, result, outcome, budget)
        self._ended(rundir, result)

    def scored(self, run_dir: Any, spec: Any, result: Any) -> None:
        self.inner.scored(run_dir, spec, result)

    def _ended(self, rundir: Any, result: Any) -> None:
        # a second Ctrl-C skips what is left of this (the run's result is on disk already)
        with contextlib.suppress(KeyboardInterrupt):
            for hook in self.hooks:
                hook(rundir, result)
            if not self.urls and not self.on_end:
                return
            message = end_message(rundir, result)
            self.sent.append(message)
            notify(self.urls, message, self._warn)
            if self.on_end:
                run_on_end(self.on_end, message, self._warn, hide=self.hide_env)
