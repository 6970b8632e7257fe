"""TuneResult: the best configuration, its evidence, and the study behind it."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd
import torch
from optuna.trial import TrialState

from explainers import LRPBase

from ._objective import Objective, configuration_key
from ._policy import best_trial, choose_from_front
from ._space import SearchSpace

logger = logging.getLogger("tuner")


@dataclass(eq=False)
class TuneResult:
    """What ``tune()`` found. ``best_explainer`` is ready to use; ``summary()`` compares it with the defaults,
    on the tuning samples and on held-out ones. With several metrics the result is a Pareto front:
    ``pareto_front()`` lists it and ``choose(index=..., weights=...)`` picks a configuration from it."""

    study: optuna.Study
    space: SearchSpace
    objective: Objective
    holdout: Objective | None = None
    _held_out_cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def multi_objective(self) -> bool:
        return len(self.study.directions) > 1

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial:
        """The best trial; with several metrics, the front's trial that ``choose()`` picks by default."""
        return best_trial(self.study)

    @property
    def best_params(self) -> dict[str, Any]:
        """The best trial's Optuna parameters (the tunables' own names with one explainer)."""
        return dict(self.best_trial.params)

    @property
    def best_value(self):
        """The best trial's score (a tuple of scores with several metrics)."""
        trial = self.best_trial
        return tuple(trial.values) if self.multi_objective else trial.value

    @property
    def best_explainer(self) -> LRPBase:
        """A new explainer built with the best parameters."""
        return self.space.from_params(self.best_trial.params)

    @property
    def default_value(self):
        """The score of the best variant's default configuration (trial 0 for one explainer)."""
        return self._defaults().get(self.space.variant_of(self.best_trial.params), float("nan"))

    def pareto_front(self) -> pd.DataFrame:
        """The non-dominated trials: their number, one column per metric, and parameters."""
        names = self._metric_names()
        rows = [
            {
                "trial": t.number,
                **dict(zip(names, t.values)),
                "explainer": t.user_attrs.get("explainer"),
                "params": self.space.explainer_kwargs(t.params),
            }
            for t in sorted(self.study.best_trials, key=lambda t: t.number)
        ]
        return pd.DataFrame(rows).set_index("trial")

    def choose(self, index: int | None = None, weights: Sequence[float] | None = None) -> LRPBase:
        """An explainer from the Pareto front: its ``index``-th row, or the row that maximises the weighted sum
        of the metrics rescaled to 0..1 over the front (1 = best in that metric's direction; equal weights
        by default)."""
        return self.space.from_params(self._choose_trial(index, weights).params)

    def _choose_trial(
        self,
        index: int | None = None,
        weights: Sequence[float] | None = None,
        among: list[optuna.trial.FrozenTrial] | None = None,
    ) -> optuna.trial.FrozenTrial:
        return choose_from_front(
            self.study.best_trials if among is None else among, self.study.directions, index=index, weights=weights
        )

    def trials_dataframe(self) -> pd.DataFrame:
        """All trials as Optuna's pandas table (parameters, values named after the metrics, e.g. ``value_AbPC``,
        states, user attributes)."""
        return self.study.trials_dataframe()

    def scores(self, explainer: LRPBase) -> torch.Tensor:
        """Per-sample scores of any explainer on the study's samples with the study's metric(s)."""
        return self.objective.evaluate(explainer)

    def held_out_scores(self, explainer: LRPBase) -> torch.Tensor | None:
        """Per-sample scores on the held-out samples (never tuned on); None without held-out samples."""
        return None if self.holdout is None else self.holdout.evaluate(explainer)

    def importances(self) -> dict[str, dict[str, float]]:
        """Optuna's parameter importances per variant (its default evaluator), where a variant has enough
        complete trials."""
        result = {}
        for variant in self.space.variants:
            trials = [t for t in self._complete() if self.space.variant_of(t.params) == variant]
            result[variant] = _importances(trials, self.study.directions)
        return {variant: values for variant, values in result.items() if values}

    def summary(self) -> pd.DataFrame:
        """Per variant: default and best score on the tuning samples and on the held-out samples, the best
        parameters (and, for LRPLayerwise, its rules in words), Optuna's parameter importances, and the
        number of complete trials."""
        defaults, importances = self._defaults(), self.importances()
        rows = []
        for variant, base in self.space.variants.items():
            best = self._best_of(variant)
            row = {
                "explainer": variant,
                "default": defaults.get(variant),
                "best": None,
                "best_params": None,
                "trials": sum(self.space.variant_of(t.params) == variant for t in self._complete()),
            }
            if best is not None:
                explainer = self.space.from_params(best.params)
                row["best"] = tuple(best.values) if self.multi_objective else best.value
                row["best_params"] = self.space.explainer_kwargs(best.params)
                if explainer.describe():
                    row["configuration"] = explainer.describe()
                row["importances"] = importances.get(variant)
                if self.holdout is not None:
                    row["default (held-out)"] = self._held_out(base)
                    row["best (held-out)"] = self._held_out(explainer)
            rows.append(row)
        return pd.DataFrame(rows).set_index("explainer")

    def _held_out(self, explainer: LRPBase):
        """Mean held-out score(s), computed once per configuration (a best equal to its default is not rescored)."""
        key = configuration_key(explainer)
        if key not in self._held_out_cache:
            assert self.holdout is not None, "held-out scores need held-out samples"
            means = self.holdout.evaluate(explainer).mean(-1)
            self._held_out_cache[key] = tuple(means.tolist()) if self.multi_objective else float(means)
        return self._held_out_cache[key]

    def _best_of(self, variant: str) -> optuna.trial.FrozenTrial | None:
        trials = [t for t in self._complete() if self.space.variant_of(t.params) == variant]
        if not trials:
            return None
        if self.multi_objective:
            front = [t for t in self.study.best_trials if self.space.variant_of(t.params) == variant]
            return self._choose_trial(among=front or trials)
        pick = max if self.study.direction.name == "MAXIMIZE" else min
        return pick(trials, key=lambda t: t.value)

    def _metric_names(self) -> list[str]:
        names = self.study.user_attrs.get("metric")
        return names if isinstance(names, list) else [names or "value"]

    def _complete(self):
        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    def _defaults(self) -> dict[str, Any]:
        return {
            self.space.variant_of(t.params): (tuple(t.values) if self.multi_objective else t.value)
            for t in self._complete()
            if t.user_attrs.get("default_configuration")
        }


def _importances(trials, directions) -> dict[str, float]:
    """Optuna's importances of the parameters the trials share; empty when they cannot be computed."""
    if len(trials) < 3 or len(directions) > 1:
        return {}
    study = optuna.create_study(direction=directions[0].name.lower())
    study.add_trials(trials)
    # the evaluator's warnings (few trials, a constant parameter) qualify a number in a table: a debug line
    # (shown by the CLI's --verbose), not a warning in every run's output
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return {name: float(value) for name, value in optuna.importance.get_param_importances(study).items()}
        except (RuntimeError, ValueError):  # no parameter varies, or no shared search space
            return {}
        finally:
            for warning in caught:
                logger.debug("parameter importances: %s", warning.message)
