"""The command line's own errors and exit codes."""

from __future__ import annotations

import signal

EXIT_TERMINATED = 128 + signal.SIGTERM


class CliError(Exception):
    """Bad input: printed as one line, exit code 2, nothing created."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C: Optuna marks the running trial failed at once (not after the heartbeat)."""
