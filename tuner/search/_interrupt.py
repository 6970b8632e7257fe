"""The signals the command line received, raised again at the next safe point.

The command line's SIGINT/SIGTERM handlers raise at once, but Python swallows an exception raised while it runs a
weakref callback or a ``__del__`` (it only prints "Exception ignored"); the trial would then go on and complete.
The handlers record the signal here, and the trial loop raises it again between chunks of samples.
"""

from __future__ import annotations

RECEIVED: list[KeyboardInterrupt] = []  # this command's signals, in order


def raise_if_received() -> None:
    """Raise the last signal received (a KeyboardInterrupt, or its SIGTERM subclass), if any."""
    if RECEIVED:
        raise RECEIVED[-1]
