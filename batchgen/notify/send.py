"""Where the end message goes: every ``--notify URL`` through apprise (one URL format for Slack,
Discord, e-mail, ntfy, a plain ``json://`` webhook …), and ``--on-end CMD`` run with the outcome
in BATCHGEN_* environment variables. A failed notification is said, never fatal: the run's
result is on disk whatever a webhook answers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from batchgen.errors import UsageError, redact
from batchgen.notify.message import EndMessage

ON_END_TIMEOUT_S = 120.0
INSTALL_HINT = "pip install 'batchgen[notify]' (the apprise library)"


def _apprise() -> Any:
    with _quiet():
        # lazy: apprise is an optional extra (batchgen[notify]); only --notify loads it
        import apprise
    return apprise


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """apprise loads its plugins on first use, and one imports the deprecated ``imghdr``
    (Python 3.11–3.12): a DeprecationWarning that is not the user's business."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def check_urls(urls: Sequence[str]) -> None:
    """Refuse (UsageError, before anything is sent) a URL apprise cannot use, or a missing
    apprise; the message names the URL's scheme, never the URL (it may hold a token)."""
    if not urls:
        return
    try:
        apprise = _apprise()
    except ModuleNotFoundError as exc:
        raise UsageError(f"--notify needs apprise: {INSTALL_HINT}") from exc
    for i, url in enumerate(urls, 1):
        with _quiet():
            usable = apprise.Apprise.instantiate(url) is not None
        if not usable:
            scheme = url.partition("://")[0] if "://" in url else "(no scheme)"
            msg = (
                f"--notify #{i} ({scheme}://…) is not a URL apprise can send to: see "
                "https://github.com/caronc/apprise/wiki for the formats (e.g. "
                "json://host:port/path, slack://…, ntfys://topic)"
            )
            raise UsageError(msg)


def notify(urls: Sequence[str], message: EndMessage, warn: Callable[[str], None]) -> int:
    """Send ``message`` to every URL; returns how many took it."""
    if not urls:
        return 0
    apprise = _apprise()

    sent = 0
    for i, url in enumerate(urls, 1):
        box = apprise.Apprise()
        with _quiet():
            box.add(url)
        try:
            with _quiet():
                okay = bool(
                    box.notify(title=message.title, body=message.body, notify_type=message.kind)
                )
        except Exception as exc:  # a notifier's own bug must not cost the run its ending
            okay = False
            warn(f"--notify #{i}: {type(exc).__name__}: {redact(str(exc), (url,))}")
        if okay:
            sent += 1
        else:
            warn(f"--notify #{i}: not delivered (the run's result is on disk: {message.run_dir})")
    return sent


def run_on_end(
    command: str,
    message: EndMessage,
    warn: Callable[[str], None],
    *,
    hide: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> int | None:
    """Run ``command`` in a shell with BATCHGEN_* set; ``hide``: variables not passed on (the
    run's key variables). Returns its exit status (None when it could not run in time)."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if k not in hide}
    env.update(message.environ())
    try:
        # its own process group: at the time limit the command and what it started stop
        proc = subprocess.Popen(
            command, shell=True, env=env, stdin=subprocess.DEVNULL, start_new_session=True
        )
    except OSError as exc:
        warn(f"--on-end could not start: {type(exc).__name__}: {exc.strerror or exc}")
        return None
    try:
        code = proc.wait(timeout=ON_END_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # never the command line in the message: it often carries a webhook's token
        with contextlib.suppress(OSError):
            killpg = getattr(os, "killpg", None)  # POSIX; elsewhere the shell alone
            if killpg is not None:
                killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        proc.wait()
        warn(
            f"--on-end did not finish within {ON_END_TIMEOUT_S:g} s and was stopped (the "
            f"run's result is on disk: {message.run_dir})"
        )
        return None
    if code != 0:
        warn(f"--on-end exited with status {code}")
    return code
