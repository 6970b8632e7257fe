"""The phases of a run (model, inert checks, trials, held-out scores, reference rows, figures, robustness panel):
each named on stderr as it starts (the report's estimated first), and the time spent in each printed at the end.

``tune()`` and the report mark their phases with :func:`phase`; nothing is printed or timed unless a caller
records them (:func:`recording`: the command line, ``benchmarks/overhead.py``), so a library user sees nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class PhaseTimes:
    """Seconds per phase, in the order the phases started (a phase entered twice adds up)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self.seconds: dict[str, float] = {}
        #: seconds a phase was estimated to take before it started (:func:`announce`): the summary shows both
        self.estimates: dict[str, float] = {}
        self.started = time.perf_counter()

    def start(self, name: str) -> None:
        """Announce a phase the first time it starts."""
        if name not in self.seconds:
            self.say(f"{name} ...")

    def say(self, line: str) -> None:
        """Print a line of the run (an estimate of what comes) where phases are announced."""
        if self.stream is not None:
            print(f"[{time.perf_counter() - self.started:7.1f} s] {line}", file=self.stream, flush=True)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def total(self) -> float:
        return time.perf_counter() - self.started

    def summary(self) -> str:
        """``time per phase: model 2.1 s, inert checks 4.0 s, trials 30.2 s (71%), held-out scores 5.1 s (12%)
        [estimated 6 s], ...; total 42.5 s``."""
        total = self.total()
        parts = []
        for name, seconds in self.seconds.items():
            part = f"{name} {seconds:.1f} s" + (f" ({100 * seconds / total:.0f}%)" if total > 0 else "")
            if name in self.estimates:
                part += f" [estimated {self.estimates[name]:.0f} s]"
            parts.append(part)
        return f"time per phase: {', '.join(parts)}; total {total:.1f} s"


_ACTIVE: list[PhaseTimes] = []


@contextmanager
def recording(stream: TextIO | None = sys.stderr) -> Iterator[PhaseTimes]:
    """Record (and, with a ``stream``, announce) the phases run inside this block."""
    times = PhaseTimes(stream)
    _ACTIVE.append(times)
    try:
        yield times
    finally:
        _ACTIVE.remove(times)


def announce(line: str, estimates: dict[str, float] | None = None) -> None:
    """Say ``line`` where a run is recorded (nothing for a library user) and keep the phases' ``estimates``
    (seconds), which the summary shows beside what the phases took."""
    for times in _ACTIVE:
        times.say(line)
        times.estimates.update(estimates or {})


_OPEN: list[list] = []  # the phases now running, innermost last: [name, when it started or resumed]


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Mark a phase: announced as it starts and timed where a run is being recorded, else nothing. A phase entered
    inside another pauses it: each second counts in one phase only (the panel's metrics inside the held-out
    scores)."""
    recorders = list(_ACTIVE)  # every recording block (a benchmark around the command line's own) sees it
    for times in recorders:
        times.start(name)
    now = time.perf_counter()
    if _OPEN:
        _charge(recorders, _OPEN[-1], now)
    _OPEN.append([name, now])
    try:
        yield
    finally:
        now = time.perf_counter()
        _charge(recorders, _OPEN.pop(), now)
        if _OPEN:
            _OPEN[-1][1] = now


def _charge(recorders: list[PhaseTimes], running: list, now: float) -> None:
    """Add the time since ``running`` started (or resumed) to its phase."""
    for times in recorders:
        times.add(running[0], now - running[1])
