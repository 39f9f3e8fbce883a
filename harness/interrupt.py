"""SIGTERM unwinds like Ctrl-C: `kill`, a CI runner's timeout or `docker stop` of a wrapper then runs the
same clean-up (context managers, ``atexit``) that removes every labelled container a command made."""

from __future__ import annotations

import signal
import threading


def sigterm_as_interrupt() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread (a no-op in any other thread)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, raise_interrupt)


def raise_interrupt(signum: int, frame: object) -> None:  # noqa: ARG001
    """A signal handler that raises KeyboardInterrupt (for a scoped `signal.signal`, e.g. `srl evaluate`)."""
    raise KeyboardInterrupt
