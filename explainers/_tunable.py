"""Tunable: one search-space entry (name, range or choices, condition), as Optuna's distributions are.

Explainers declare their space in the ``(type, keyword arguments of Optuna's suggest_*)`` form of
:meth:`LRPBase.get_tunables`, which users read and write; :meth:`LRPBase.tunables` turns each entry into a
:class:`Tunable`, and the tuner reads names, ranges and conditions from that one object only.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Tunables = dict[str, tuple[type, dict[str, Any]]]
_RANGE_KEYS = frozenset({"low", "high", "log", "step"})


@dataclass(frozen=True)
class Tunable:
    """A tunable parameter of an explainer.

    ``name`` is the constructor argument (and :meth:`LRPBase.set_kwargs` keyword) it sets. A numeric tunable
    has ``low``/``high`` (``log`` for a log-uniform range, ``step`` for a grid of ints or floats); a
    categorical one has ``choices``. ``condition`` maps other tunables to the values for which this one
    exists (``lower_gamma`` exists only where ``lower_rule`` is ``"gamma"``); empty for an unconditional one.
    """

    name: str
    type: builtins.type
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    condition: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @classmethod
    def from_spec(
        cls,
        name: str,
        kind: builtins.type,
        spec: Mapping[str, Any],
        condition: Mapping[str, Sequence[Any]] | None = None,
    ) -> Tunable:
        """The tunable of a ``get_tunables()`` entry ``name: (kind, spec)`` and its ``get_conditions()`` entry."""
        pairs = tuple((other, tuple(values)) for other, values in (condition or {}).items())
        if "choices" in spec:
            return cls(name, kind, choices=tuple(spec["choices"]), condition=pairs)
        if kind not in (float, int):
            raise TypeError(f"tunable {name!r} has unsupported type {kind!r}; use float, int or a 'choices' list")
        unknown = set(spec) - _RANGE_KEYS
        if unknown or not {"low", "high"} <= set(spec):
            raise TypeError(
                f"tunable {name!r} needs 'low' and 'high' (and optionally 'log', 'step'); got {sorted(spec)}"
            )
        return cls(
            name,
            kind,
            low=spec["low"],
            high=spec["high"],
            log=bool(spec.get("log", False)),
            step=spec.get("step"),
            condition=pairs,
        )

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of a numeric tunable."""
        if self.low is None or self.high is None:
            raise TypeError(f"tunable {self.name!r} is categorical: it has choices, not a range")
        return self.low, self.high

    @property
    def categorical(self) -> bool:
        return self.choices is not None

    def spec(self) -> tuple[builtins.type, dict[str, Any]]:
        """The ``(type, keyword arguments of Optuna's suggest_*)`` form of :meth:`LRPBase.get_tunables`."""
        if self.choices is not None:
            return self.type, {"choices": list(self.choices)}
        spec: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            spec["log"] = True
        if self.step is not None:
            spec["step"] = self.step
        return self.type, spec

    def applies(self, chosen: Mapping[str, Any]) -> bool:
        """Whether this tunable exists given the values ``chosen`` for the tunables before it."""
        return all(chosen.get(other) in values for other, values in self.condition)

    def suggest(self, trial: Any, param_name: str) -> Any:
        """The value Optuna's ``trial`` suggests for this tunable under the name ``param_name``."""
        if self.choices is not None:
            return trial.suggest_categorical(param_name, list(self.choices))
        kwargs: dict[str, Any] = {"log": self.log}
        if self.step is not None:
            kwargs["step"] = self.step
        low, high = self.bounds
        if self.type is int:
            return trial.suggest_int(param_name, int(low), int(high), **kwargs)
        return trial.suggest_float(param_name, low, high, **kwargs)

    def grid(self, points: int = 5) -> list[Any]:
        """``points`` values over the range (log-spaced where ``log``), or every choice."""
        if self.choices is not None:
            return list(self.choices)
        space = np.geomspace if self.log else np.linspace
        values = space(*self.bounds, points)
        return sorted({int(round(v)) for v in values}) if self.type is int else [float(v) for v in values]
