"""Search spaces: the explainers' tunables turned into Optuna parameters, one or several explainers.

This is the one place that names Optuna parameters: with one explainer a parameter is its tunable's own
name, with several a categorical ``explainer`` parameter picks the class and each tunable is
``<ClassName>.<name>``. Everything else (results, reports) asks this class to translate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from explainers import LRPBase, Tunable

EXPLAINER_PARAM = "explainer"


class SearchSpace:
    """One study's space over the base explainers ``variants`` (one per class), less the tunables ``fixed``
    per class name (held at their default, found inert before the study)."""

    def __init__(self, variants: Sequence[LRPBase], fixed: Mapping[str, Sequence[str]] | None = None):
        self.variants = {type(base).__name__: base for base in variants}
        if len(self.variants) != len(variants):
            raise ValueError("each explainer class may appear only once")
        self.fixed = {variant: list(names) for variant, names in (fixed or {}).items()}

    def tunables(self, variant: str) -> dict[str, Tunable]:
        """The variant's tunables less those held at their default."""
        fixed = self.fixed.get(variant, [])
        return {name: tunable for name, tunable in self.variants[variant].tunables().items() if name not in fixed}

    @property
    def empty(self) -> bool:
        """Nothing to search: every variant's tunables are fixed."""
        return not any(self.tunables(variant) for variant in self.variants)

    @property
    def several(self) -> bool:
        return len(self.variants) > 1

    # -- names: the only place that adds or removes the ``<ClassName>.`` prefix --------------------------
    def param_name(self, variant: str, name: str) -> str:
        """The Optuna parameter of the tunable ``name`` of ``variant``."""
        return f"{variant}.{name}" if self.several else name

    def explainer_kwargs(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The tunables' values by their own names (the keywords of ``set_kwargs``) in Optuna ``params``."""
        prefix = f"{self.variant_of(params)}." if self.several else ""
        return {
            key[len(prefix) :]: value
            for key, value in params.items()
            if key.startswith(prefix) and key != EXPLAINER_PARAM
        }

    def variant_of(self, params: Mapping[str, Any]) -> str:
        """The explainer class name that Optuna ``params`` belong to."""
        return params[EXPLAINER_PARAM] if self.several else next(iter(self.variants))

    # -- explainers <-> parameters -------------------------------------------------------------------------
    def suggest(self, trial: optuna.Trial) -> LRPBase:
        """The explainer for this trial, built from its base through ``set_kwargs``."""
        variant = (
            trial.suggest_categorical(EXPLAINER_PARAM, list(self.variants))
            if self.several
            else next(iter(self.variants))
        )
        kwargs: dict[str, Any] = {}
        for name, tunable in self.tunables(variant).items():
            if tunable.applies(kwargs):
                kwargs[name] = tunable.suggest(trial, self.param_name(variant, name))
        return self.variants[variant].set_kwargs(**kwargs)

    def initial_params(self) -> list[tuple[str, dict[str, Any]]]:
        """(label, Optuna params) of the first trials: each variant's default configuration, then the
        configurations a variant declares it can express (LRPLayerwise: the four variants' defaults)."""
        initial = []
        for variant, base in self.variants.items():
            initial.append((f"{variant} default", self.to_params(base)))
            for label, kwargs in base.variant_configurations().items():
                initial.append((f"{label} as {variant}", self.to_params(base.set_kwargs(**kwargs))))
        return initial

    def to_params(self, explainer: LRPBase) -> dict[str, Any]:
        """The Optuna params that stand for ``explainer`` (the tunables whose conditions it meets)."""
        variant = type(explainer).__name__
        current = explainer.tunable_values()
        values: dict[str, Any] = {}
        for name, tunable in self.tunables(variant).items():
            if tunable.applies(values):
                values[name] = current[name]
        params = {self.param_name(variant, name): value for name, value in values.items()}
        return {EXPLAINER_PARAM: variant, **params} if self.several else params

    def from_params(self, params: Mapping[str, Any]) -> LRPBase:
        """The explainer Optuna ``params`` stand for."""
        return self.variants[self.variant_of(params)].set_kwargs(**self.explainer_kwargs(params))

    def grid(self, points: int = 5) -> dict[str, list[Any]]:
        """A grid for Optuna's GridSampler: ``points`` values per float (log-spaced where log)."""
        if self.several:
            raise ValueError(
                "the grid sampler searches one explainer at a time; pass one explainer "
                "or choose another sampler (tpe, random, gp, cmaes)"
            )
        variant, base = next(iter(self.variants.items()))
        tunables = self.tunables(variant)
        if any(tunable.condition for tunable in base.tunables().values()):
            raise ValueError(
                f"the grid sampler cannot search {variant}'s conditional parameters; "
                "choose another sampler (tpe, random, gp, cmaes)"
            )
        return {name: tunable.grid(points) for name, tunable in tunables.items()}

    def describe(self) -> dict[str, Any]:
        """The space as JSON (variant -> tunable -> [type name, spec]): what a study records and compares."""
        return {
            variant: {name: [kind.__name__, spec] for name, (kind, spec) in base.get_tunables().items()}
            for variant, base in self.variants.items()
        }
