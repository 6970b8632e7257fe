"""The signals the command line received, raised again at the next safe point.

The command line's SIGINT/SIGTERM handlers raise at once, but Python swallows an exception raised while it runs a
weakref callback or a ``__del__`` (it only prints "Exception ignored"); the trial would then go on and complete.
The handlers record the signal here, and the trial loop raises it again between chunks of samples.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

RECEIVED: list[KeyboardInterrupt] = []  # this command's signals, in order


def raise_if_received() -> None:
    """Raise the last signal received (a KeyboardInterrupt, or its SIGTERM subclass), if any."""
    if RECEIVED:
        raise RECEIVED[-1]


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM held back inside the block and delivered again at its end, to the handlers they had: for a
    step that must not stop halfway (a trial created in the storage but not yet tracked, so never failed). Signal
    handlers belong to the main thread: elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)
