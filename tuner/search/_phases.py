"""The phases of a run (model, inert checks, trials, captum baselines, held-out scores, figures): each named on
stderr as it starts, and the time spent in each printed at the end.

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
        self.started = time.perf_counter()

    def start(self, name: str) -> None:
        """Announce a phase the first time it starts."""
        if self.stream is not None and name not in self.seconds:
            print(f"[{time.perf_counter() - self.started:7.1f} s] {name} ...", file=self.stream, flush=True)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def total(self) -> float:
        return time.perf_counter() - self.started

    def summary(self) -> str:
        """``time per phase: model 2.1 s, inert checks 4.0 s, trials 30.2 s (71%), ...; total 42.5 s``."""
        total = self.total()
        parts = [
            f"{name} {seconds:.1f} s ({100 * seconds / total:.0f}%)" if total > 0 else f"{name} {seconds:.1f} s"
            for name, seconds in self.seconds.items()
        ]
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
