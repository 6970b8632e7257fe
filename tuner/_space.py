"""Search spaces: the explainers' ``get_tunables()`` turned into Optuna suggestions, one or several variants."""
from typing import Any, Dict, List, Sequence, Type

import numpy as np
import optuna

from explainers import LRPBase, LRPEpsilonAlpha2Beta1, LRPEpsilonGammaBox, LRPEpsilonPlus, LRPUniformEpsilon

ALL_VARIANTS: List[Type[LRPBase]] = [LRPUniformEpsilon, LRPEpsilonGammaBox, LRPEpsilonPlus, LRPEpsilonAlpha2Beta1]
SHORT_NAMES = {
    "uniform_epsilon": LRPUniformEpsilon,
    "epsilon_gamma_box": LRPEpsilonGammaBox,
    "epsilon_plus": LRPEpsilonPlus,
    "epsilon_alpha2_beta1": LRPEpsilonAlpha2Beta1,
}
EXPLAINER_PARAM = "explainer"
_SUGGEST = {float: "suggest_float", int: "suggest_int"}


def variant_by_name(name: str) -> Type[LRPBase]:
    """An explainer class by its class name or short name (``epsilon_plus``)."""
    for cls in ALL_VARIANTS + list(_extra_variants()):
        if name in (cls.__name__, _short_name(cls)):
            return cls
    known = ", ".join(list(SHORT_NAMES) + [_short_name(cls) for cls in _extra_variants()])
    raise ValueError(f"unknown explainer {name!r}; known: {known} (or their class names)")


def _extra_variants() -> List[Type[LRPBase]]:
    import explainers
    return [getattr(explainers, name) for name in ("LRPLayerwise",) if hasattr(explainers, name)]


def _short_name(cls: Type[LRPBase]) -> str:
    for short, known in SHORT_NAMES.items():
        if known is cls:
            return short
    return cls.__name__


class SearchSpace:
    """One study's space: with one variant the tunables' own names, with several a categorical
    ``explainer`` parameter and each variant's tunables under ``<ClassName>.<name>``."""

    def __init__(self, variants: Sequence[LRPBase]):
        self.variants = {type(base).__name__: base for base in variants}
        if len(self.variants) != len(variants):
            raise ValueError("each explainer class may appear only once")

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
        for name, (kind, spec) in base.get_tunables().items():
            if _applies(spec, kwargs):
                kwargs[name] = _suggest(trial, self.param_name(variant, name), kind, spec)
        return base.set_kwargs(**kwargs)

    def default_params(self) -> List[Dict[str, Any]]:
        """Optuna params of each variant's default configuration (its constructor defaults)."""
        return [self.to_params(base) for base in self.variants.values()]

    def to_params(self, explainer: LRPBase) -> Dict[str, Any]:
        variant = type(explainer).__name__
        values: Dict[str, Any] = {}
        for name, (_, spec) in explainer.get_tunables().items():
            if _applies(spec, values):
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
        base = next(iter(self.variants.values()))
        tunables = base.get_tunables()
        if any("when" in spec for _, spec in tunables.values()):
            raise ValueError(f"the grid sampler cannot search {type(base).__name__}'s conditional parameters; "
                             "choose another sampler (tpe, random, gp, cmaes)")
        return {name: _grid_values(kind, spec, points) for name, (kind, spec) in tunables.items()}


def _applies(spec: Dict[str, Any], chosen: Dict[str, Any]) -> bool:
    """A tunable whose spec holds ``"when": {other: [values]}`` exists only where ``other`` took one of them."""
    return all(chosen.get(other) in values for other, values in spec.get("when", {}).items())


def _suggest(trial: optuna.Trial, name: str, kind: Any, spec: Dict[str, Any]) -> Any:
    spec = {key: value for key, value in spec.items() if key != "when"}
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
