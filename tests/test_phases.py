"""The run's phases: announced once, timed, and a phase inside another pauses the outer one."""

from __future__ import annotations

import io

from tuner.search import _phases
from tuner.search._phases import phase, recording


def test_a_nested_phase_pauses_the_outer_one(monkeypatch):
    clock = iter([0.0, 1.0, 3.0, 4.0, 10.0, 20.0])  # recording, outer in, inner in, inner out, outer out, total
    monkeypatch.setattr(_phases.time, "perf_counter", lambda: next(clock))
    with recording(None) as times:
        with phase("held-out scores"):
            with phase("robustness panel"):
                pass
    assert times.seconds == {"held-out scores": 2.0 + 6.0, "robustness panel": 1.0}
    assert times.total() == 20.0


def test_each_phase_is_announced_once():
    stream = io.StringIO()
    with recording(stream):
        for _ in range(2):
            with phase("held-out scores"), phase("robustness panel"):
                pass
    assert [line.split("] ")[1] for line in stream.getvalue().splitlines()] == [
        "held-out scores ...",
        "robustness panel ...",
    ]


def test_phases_outside_a_recording_are_not_timed():
    with phase("trials"):
        pass
    with recording(None) as times:
        pass
    assert times.seconds == {}
