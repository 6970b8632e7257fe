"""The command line's entry point: ``python -m tuner run|dashboard|best`` (installed as ``lrp-tuner``), its
Ctrl-C and SIGTERM handling, and what a user reads (one line per error, no tracebacks unless ``--verbose``)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import warnings
from typing import Any

import optuna

from ..search._interrupt import RECEIVED
from ..storage._open import (
    redact,
)
from ._errors import EXIT_TERMINATED, CliError, Terminated
from ._parser import EXIT_BAD_INPUT
from ._parser import parser as _parser
from ._run import run
from ._stored import best, dashboard


def _terminate(signum: int, frame: Any) -> None:
    RECEIVED.append(Terminated())
    raise RECEIVED[-1]


def _interrupt(signum: int, frame: Any) -> None:
    RECEIVED.append(KeyboardInterrupt())
    raise RECEIVED[-1]


def _quiet_unraisable(previous: Any) -> Any:
    """An unraisable-exception hook that stays silent about this command's own signals: a SIGTERM or Ctrl-C that
    lands in a garbage-collector callback is swallowed there with a traceback on stderr; ``RECEIVED`` keeps it and
    the next check raises it."""

    def hook(unraisable: Any) -> None:
        if not any(unraisable.exc_value is received for received in RECEIVED):
            previous(unraisable)

    return hook


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    configure_output(verbose=getattr(args, "verbose", False))
    RECEIVED.clear()
    previous = signal.signal(signal.SIGTERM, _terminate)
    previous_int = signal.signal(signal.SIGINT, _interrupt)
    previous_hook, sys.unraisablehook = sys.unraisablehook, _quiet_unraisable(sys.unraisablehook)
    try:
        command = {"run": run, "dashboard": dashboard, "best": best}[args.command]  # looked up per call
        code = command(args)
        return _interrupted(RECEIVED[-1]) if RECEIVED else code  # a signal whose exception Python swallowed
    except KeyboardInterrupt as interrupt:
        return _interrupted(interrupt)
    except Exception as error:
        interruption = _interruption(error) or (RECEIVED[-1] if RECEIVED else None)
        if interruption is not None:  # e.g. a database driver's error raised while Ctrl-C was handled
            return _interrupted(interruption)
        if not isinstance(error, (CliError, ValueError, TypeError, OSError)):
            raise
        print(f"error: {redact(str(error), getattr(args, 'storage', None))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        sys.unraisablehook = previous_hook
        RECEIVED.clear()  # a later tune() in this process must not see this command's signals


QUIETED_LOGGERS = ("matplotlib", "PIL", "sqlalchemy")  # the font cache's messages, a pool's reset tracebacks


def configure_output(*, verbose: bool) -> None:
    """What a CLI user reads: the tuner's lines and Optuna's warnings about trials, one line each. Optuna's
    experimental and other Python warnings, matplotlib's font-cache messages and the database drivers' logs are
    shown only with ``verbose`` (which also shows the tracebacks of failed trials and the tuner's debug lines)."""
    logging.basicConfig(format="%(message)s", level=logging.INFO)
    logging.getLogger("tuner").setLevel(logging.DEBUG if verbose else logging.INFO)
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.CRITICAL)
    for handler in logging.getLogger("optuna").handlers:
        handler.removeFilter(_without_traceback)
        handler.removeFilter(_not_interrupted)
        handler.addFilter(_not_interrupted)
        if not verbose:
            handler.addFilter(_without_traceback)  # a failed trial is one line; its reason is in the storage
    threading.excepthook = threading.__excepthook__ if verbose else _thread_error_line
    if not verbose:
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", module=r"(optuna|matplotlib)(\.|$)")


def _thread_error_line(args: threading.ExceptHookArgs) -> None:
    """An error in a background thread (Optuna's heartbeat finding the database locked while a trial is being
    failed at Ctrl-C) as one warning line, not a traceback."""
    message = str(args.exc_value).strip().splitlines()[0] if str(args.exc_value).strip() else ""
    name = args.thread.name if args.thread is not None else "a thread"
    print(f"warning: {name}: {type(args.exc_value).__name__}: {message}", file=sys.stderr)


def _interruption(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM) during whose handling ``error`` was raised, if any."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _interrupted(interrupt: KeyboardInterrupt) -> int:
    """Ctrl-C or SIGTERM anywhere in a command: one line, no traceback; the exit code says which."""
    terminated = isinstance(interrupt, Terminated)
    print(
        f"{'terminated' if terminated else 'interrupted'}: a trial that was running is marked failed; "
        "run the same command again to resume",
        file=sys.stderr,
    )
    return EXIT_TERMINATED if terminated else 130


def _without_traceback(record: logging.LogRecord) -> bool:
    record.exc_info, record.exc_text = None, None
    return True


def _not_interrupted(record: logging.LogRecord) -> bool:
    """No record of a trial stopped by Ctrl-C or SIGTERM: main's one line says so."""
    return not (record.exc_info and _interruption(record.exc_info[1]) is not None)  # type: ignore[arg-type]
