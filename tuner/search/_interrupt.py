"""Where a Ctrl-C or SIGTERM may stop the trial loop: in its computation, never inside a storage call.

A signal that lands inside a database call leaves the connection half way through a statement; the trial it was
writing cannot then be marked failed (it stays running until its heartbeat goes stale), and one that lands while
Optuna starts a trial's heartbeat thread leaves that thread running, so the process never exits. The trial loop
therefore holds SIGINT and SIGTERM back (:func:`signals_deferred`) and lets them through only around computation
(:func:`signals_allowed`: attributions, metrics, waiting) and where stopping loses nothing (:func:`deliver_held`:
before a trial is created, at the end of its objective).
A signal sent again while one is held is delivered at once: the user insists.

The command line's handlers raise at once, but Python swallows an exception raised while it runs a weakref
callback or a ``__del__`` (it only prints "Exception ignored"); the trial would then go on and complete. The
handlers record the signal in :data:`RECEIVED`, and the trial loop raises it again between chunks of samples.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

RECEIVED: list[KeyboardInterrupt] = []  # this command's signals, in order
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def raise_if_received() -> None:
    """Raise the last signal received (a KeyboardInterrupt, or its SIGTERM subclass), if any."""
    if RECEIVED:
        raise RECEIVED[-1]


@dataclass
class _Hold:
    """One :func:`signals_deferred` block: the handlers it replaced and the signals it holds."""

    handlers: dict[int, Any]
    pending: list[int] = field(default_factory=list)


_HOLDS: list[_Hold] = []  # the main thread's open signals_deferred blocks, innermost last


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # signal handlers belong to it


def _install(handlers: dict[int, Any]) -> None:
    for sig, handler in handlers.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)  # None: not set from Python


def _deliver(hold: _Hold) -> None:
    """Send the held signals again, once each, to the handlers installed now."""
    pending = dict.fromkeys(hold.pending)
    hold.pending.clear()
    for signum in pending:
        signal.raise_signal(signum)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM held back inside the block and delivered at its end to the handlers they had (or earlier,
    inside :func:`signals_allowed`): for work that must not stop half way. Outside the main thread the block runs
    as it is."""
    if not _in_main_thread():
        yield
        return
    hold = _Hold(handlers={})

    def record(signum: int, frame: Any) -> None:
        if signum not in hold.pending:
            hold.pending.append(signum)
            return
        handler = hold.handlers[signum]  # sent again: delivered now
        if callable(handler):
            handler(signum, frame)
        else:  # the default action (terminate) or ignore it
            _install({signum: handler})
            signal.raise_signal(signum)

    hold.handlers = {sig: signal.signal(sig, record) for sig in SIGNALS}
    _HOLDS.append(hold)
    try:
        yield
    finally:
        _HOLDS.remove(hold)
        _install(hold.handlers)
        _deliver(hold)


@contextlib.contextmanager
def signals_allowed() -> Iterator[None]:
    """Inside :func:`signals_deferred`, the handlers it replaced again, for work a signal may stop anywhere
    (computation, no storage call); the signals held so far are delivered first. Elsewhere it does nothing."""
    if not _HOLDS or not _in_main_thread():
        yield
        return
    hold = _HOLDS[-1]
    holding: dict[int, Any] = {sig: signal.getsignal(sig) for sig in SIGNALS}
    _install(hold.handlers)
    try:
        _deliver(hold)
        yield
    finally:
        _install(holding)


def deliver_held() -> None:
    """Deliver the signals held so far (inside :func:`signals_deferred`): at a point where stopping loses nothing."""
    with signals_allowed():
        pass
