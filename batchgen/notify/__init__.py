"""A word when a session ends: ``--notify URL`` (apprise) and ``--on-end CMD``. docs/notify.md."""

from batchgen.notify.message import EndMessage, end_message
from batchgen.notify.observer import NotifyingObserver
from batchgen.notify.send import check_urls, notify, run_on_end

__all__ = ["EndMessage", "NotifyingObserver", "check_urls", "end_message", "notify", "run_on_end"]
