"""Search spaces: the explainers' ``get_tunables()`` turned into Optuna suggestions, one or several variants."""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np
import optuna

from explainers import (LRPBase, LRPEpsilonAlpha2Beta1, LRPEpsilonGammaBox, LRPEpsilonPlus, LRPLayerwise,
                        LRPUniformEpsilon)

ALL_VARIANTS: List[Type[LRPBase]] = [LRPUniformEpsilon, LRPEpsilonGammaBox, LRPEpsilonPlus, LRPEpsilonAlpha2Beta1]
SHORT_NAMES = {
    "uniform_epsilon": LRPUniformEpsilon,
    "epsilon_gamma_box": LRPEpsilonGammaBox,
    "epsilon_plus": LRPEpsilonPlus,
    "epsilon_alpha2_beta1": LRPEpsilonAlpha2Beta1,
    "layerwise": LRPLayerwise,
}
EXPLAINER_PARAM = "explainer"
_SUGGEST = {float: "suggest_float", int: "suggest_int"}


def variant_by_name(name: str) -> Type[LRPBase]:
    """An explainer class by its class name or short name (``epsilon_plus``)."""
    for short, cls in SHORT_NAMES.items():
        if name in (cls.__name__, short):
            return cls
    raise ValueError(f"unknown explainer {name!r}; known: {', '.join(SHORT_NAMES)} (or their class names)")


class SearchSpace:
    """One study's space: with one variant the tunables' own names, with several a categorical
    ``explainer`` parameter and each variant's tunables under ``<ClassName>.<name>``."""

    def __init__(self, variants: Sequence[LRPBase], fixed: Optional[Dict[str, List[str]]] = None):
        self.variants = {type(base).__name__: base for base in variants}
        if len(self.variants) != len(variants):
            raise ValueError("each explainer class may appear only once")
        self.fixed = {variant: list(names) for variant, names in (fixed or {}).items()}

    def tunables(self, variant: str) -> Dict[str, Any]:
        """The variant's tunables less those held at their default (found inert before the study)."""
        fixed = self.fixed.get(variant, [])
        return {name: spec for name, spec in self.variants[variant].get_tunables().items() if name not in fixed}

    @property
    def empty(self) -> bool:
        """Nothing to search: every variant's tunables are fixed."""
        return not any(self.tunables(variant) for variant in self.variants)

    @property
    def several(self) -> bool:
        return len(self.variants) > 1

    def param_name(self, variant: str, name: str) -> str:
        return f"{variant}.{name}" if self.several else name

    def suggest(self, trial: optuna.Trial) -> LRPBase:
        """The explainer for this trial, built from its base through ``set_kwargs``."""
        variant = trial.suggest_categorical(EXPLAINER_PARAM, list(self.variants)) if self.several \
            else next(iter(self.variants))
        base = self.variants[variant]
        kwargs: Dict[str, Any] = {}
        conditions = base.get_conditions()
        for name, (kind, spec) in self.tunables(variant).items():
            if applies(conditions.get(name, {}), kwargs):
                kwargs[name] = _suggest(trial, self.param_name(variant, name), kind, spec)
        return base.set_kwargs(**kwargs)

    def initial_params(self) -> List[Tuple[str, Dict[str, Any]]]:
        """(label, Optuna params) of the first trials: each variant's default configuration, then the
        configurations a variant declares it can express (LRPLayerwise: the four variants' defaults)."""
        initial = []
        for variant, base in self.variants.items():
            initial.append((f"{variant} default", self.to_params(base)))
            declared = getattr(type(base), "variant_configurations", None)
            for label, kwargs in (declared() if declared else {}).items():
                initial.append((f"{label} as {variant}", self.to_params(base.set_kwargs(**kwargs))))
        return initial

    def to_params(self, explainer: LRPBase) -> Dict[str, Any]:
        variant = type(explainer).__name__
        values: Dict[str, Any] = {}
        conditions = explainer.get_conditions()
        for name in self.tunables(variant):
            if applies(conditions.get(name, {}), values):
                values[name] = getattr(explainer, name)
        params = {self.param_name(variant, name): value for name, value in values.items()}
        return {EXPLAINER_PARAM: variant, **params} if self.several else params

    def from_params(self, params: Dict[str, Any]) -> LRPBase:
        """The explainer an Optuna parameter dict stands for."""
        variant = params[EXPLAINER_PARAM] if self.several else next(iter(self.variants))
        base = self.variants[variant]
        prefix = f"{variant}." if self.several else ""
        kwargs = {key[len(prefix):]: value for key, value in params.items() if key.startswith(prefix)
                  and key != EXPLAINER_PARAM}
        return base.set_kwargs(**kwargs)

    def variant_of(self, params: Dict[str, Any]) -> str:
        return params[EXPLAINER_PARAM] if self.several else next(iter(self.variants))

    def grid(self, points: int = 5) -> Dict[str, List[Any]]:
        """A grid for Optuna's GridSampler: ``points`` values per float (log-spaced where log)."""
        if self.several:
            raise ValueError("the grid sampler searches one explainer at a time; pass one explainer "
                             "or choose another sampler (tpe, random, gp, cmaes)")
        variant, base = next(iter(self.variants.items()))
        tunables = self.tunables(variant)
        if base.get_conditions():
            raise ValueError(f"the grid sampler cannot search {type(base).__name__}'s conditional parameters; "
                             "choose another sampler (tpe, random, gp, cmaes)")
        return {name: _grid_values(kind, spec, points) for name, (kind, spec) in tunables.items()}


def applies(condition: Dict[str, List[Any]], chosen: Dict[str, Any]) -> bool:
    """A conditional tunable (``{other: [values]}``) exists only where ``other`` took one of those values."""
    return all(chosen.get(other) in values for other, values in condition.items())


def _suggest(trial: optuna.Trial, name: str, kind: Any, spec: Dict[str, Any]) -> Any:
    if kind in _SUGGEST:
        return getattr(trial, _SUGGEST[kind])(name, **spec)
    if "choices" in spec:
        return trial.suggest_categorical(name, spec["choices"])
    raise TypeError(f"tunable {name!r} has unsupported type {kind!r}; use float, int or a 'choices' list")


def _grid_values(kind: Any, spec: Dict[str, Any], points: int) -> List[Any]:
    if "choices" in spec:
        return list(spec["choices"])
    low, high = spec["low"], spec["high"]
    values = np.geomspace(low, high, points) if spec.get("log") else np.linspace(low, high, points)
    return sorted({int(round(v)) for v in values}) if kind is int else [float(v) for v in values]
