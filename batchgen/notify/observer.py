"""A session observer that passes everything to the one it wraps, and when a session ends
(live or through the Batch API) runs the caller's hooks (``--metadata``), then sends the end
message: ``--notify`` and ``--on-end``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from batchgen.notify.message import ALERT_SHARE, EndMessage, budget_alert, end_message
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
        shown = self.inner.progress(total, budget, status)
        if not self.urls or budget is None or not getattr(budget, "cap_usd", None):
            return shown
        return self._watch_budget(shown, budget)

    @contextlib.contextmanager
    def _watch_budget(self, shown: Any, budget: Any) -> Iterator[Callable[[Any], None]]:
        """One alert when the spend passes ALERT_SHARE of --max-cost, sent from a thread (the
        pool calls the progress function on its event loop, which must not wait on a
        webhook)."""
        alerted = [False]
        with shown as update:

            def on_tally(tally: Any) -> None:
                update(tally)
                if not alerted[0] and budget.spent >= ALERT_SHARE * budget.cap_usd:
                    alerted[0] = True
                    alert = budget_alert(budget.spent, budget.cap_usd)
                    threading.Thread(
                        target=notify, args=(self.urls, alert, self._warn), daemon=True
                    ).start()

            yield on_tally

    def closed(self) -> str | None:
        """The wrapped observer's word that nobody reads its output any more (a closed pipe
        stops the session like a Ctrl-C), when it has one."""
        inner = getattr(self.inner, "closed", None)
        return inner() if callable(inner) else None

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
