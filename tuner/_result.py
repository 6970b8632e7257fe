"""TuneResult: the best configuration, its evidence, and the study behind it."""
from dataclasses import dataclass
from typing import Any, Dict

import optuna
import pandas as pd
import torch
from optuna.trial import TrialState

from explainers import LRPBase

from ._objective import Objective
from ._space import SearchSpace


@dataclass
class TuneResult:
    """What ``tune()`` found. ``best_explainer`` is ready to use; ``summary()`` compares it with the defaults."""

    study: optuna.Study
    space: SearchSpace
    objective: Objective

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial:
        return self.study.best_trial

    @property
    def best_params(self) -> Dict[str, Any]:
        """The best trial's Optuna parameters (the tunables' own names with one explainer)."""
        return dict(self.best_trial.params)

    @property
    def best_value(self) -> float:
        return self.best_trial.value

    @property
    def best_explainer(self) -> LRPBase:
        """A new explainer built with the best parameters."""
        return self.space.from_params(self.best_trial.params)

    @property
    def default_value(self) -> float:
        """The score of the best variant's default configuration (trial 0 for one explainer)."""
        return self._defaults().get(self.space.variant_of(self.best_trial.params), float("nan"))

    def trials_dataframe(self) -> pd.DataFrame:
        """All trials as Optuna's pandas table (parameters, values, states, user attributes)."""
        return self.study.trials_dataframe()

    def scores(self, explainer: LRPBase) -> torch.Tensor:
        """Per-sample scores of any explainer on the study's samples with the study's metric."""
        return self.objective.evaluate(explainer)

    def summary(self) -> pd.DataFrame:
        """Per variant: default score, best score, best parameters, complete trials."""
        defaults = self._defaults()
        rows = []
        for variant in self.space.variants:
            trials = [t for t in self._complete() if self.space.variant_of(t.params) == variant]
            if not trials:
                rows.append({"explainer": variant, "default": defaults.get(variant), "best": None,
                             "best_params": None, "trials": 0})
                continue
            best = (max if self.study.direction.name == "MAXIMIZE" else min)(trials, key=lambda t: t.value)
            params = {k.split(".", 1)[-1]: v for k, v in best.params.items() if k != "explainer"}
            rows.append({"explainer": variant, "default": defaults.get(variant), "best": best.value,
                         "best_params": params, "trials": len(trials)})
        return pd.DataFrame(rows).set_index("explainer")

    def _complete(self):
        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    def _defaults(self) -> Dict[str, float]:
        return {self.space.variant_of(t.params): t.value for t in self._complete()
                if t.user_attrs.get("default_configuration")}
