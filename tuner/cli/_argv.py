"""``command_line``: the argument list of a ``python -m tuner`` process, e.g. to start workers from Python."""

from __future__ import annotations

import sys


def command_line(command: str, *flags: str, **options: object) -> list[str]:
    """``[python, -m, tuner, command, *flags]`` then each option as its flag: ``n_trials=6`` is ``--n-trials 6``,
    ``True`` the bare flag, ``None`` and ``False`` nothing."""
    argv = [sys.executable, "-m", "tuner", command, *flags]
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return argv
