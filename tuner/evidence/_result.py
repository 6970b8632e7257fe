"""TuneResult: the best configuration, its evidence, and the study behind it."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd
import torch
from optuna.trial import TrialState

from explainers import LRPBase, evaluation_mode
from metrics import Metric

from ..search._fair import configurations
from ..search._objective import TrialObjective
from ..search._policy import best_trial, choose_from_front
from ..search._space import SearchSpace
from ..search._study import trial_seconds
from ._heldout import HeldOutScorer
from ._known import known_evidence
from ._statistics import compare
from .panel._panel import Panel
from .panel._scoring import DEFAULT_PANEL_BUDGET, DEFAULT_PANEL_MIN_SECONDS, budgeted_panel, panel_seconds

if TYPE_CHECKING:
    from ._reference import StepChoice

#: the summary's columns of the paired held-out comparison of the best configuration with each row
VS_ROW = "best vs row: "

logger = logging.getLogger("tuner")


@dataclass(eq=False)
class TuneResult:
    """What ``tune()`` found. ``best_explainer`` is ready to use; ``summary()`` compares it with the defaults,
    on the tuning samples and on held-out ones. With several metrics the result is a Pareto front:
    ``pareto_front()`` lists it and ``choose(index=..., weights=...)`` picks a configuration from it."""

    study: optuna.Study
    space: SearchSpace
    objective: TrialObjective
    holdout: TrialObjective | None = None
    panel_metrics: list[tuple[str, Metric]] = field(default_factory=list)
    #: whether comparisons and the panel include captum's reference rows (the CLI's ``--no-baselines`` turns off)
    references: bool = True
    #: the panel's time budget: this fraction of the trials' time (0: no panel), never less than the seconds
    panel_budget: float = DEFAULT_PANEL_BUDGET
    panel_min_seconds: float = DEFAULT_PANEL_MIN_SECONDS
    #: IntegratedGradients' steps in the reference rows (chosen by its error: :meth:`choose_ig_steps`)
    ig_steps: int | None = None
    _panel: Panel | None = field(default=None, repr=False)
    _scorer: HeldOutScorer | None = field(default=None, repr=False)
    _known: pd.DataFrame | None = field(default=None, repr=False)

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
        self, index: int | None = None, weights: Sequence[float] | None = None, among: list | None = None
    ) -> optuna.trial.FrozenTrial:
        front = self.study.best_trials if among is None else among
        return choose_from_front(front, self.study.directions, index=index, weights=weights)

    def trials_dataframe(self) -> pd.DataFrame:
        """All trials as Optuna's pandas table (parameters, values named after the metrics, e.g. ``value_AbPC``,
        states, user attributes)."""
        return self.study.trials_dataframe()

    def scores(self, explainer: LRPBase) -> torch.Tensor:
        """Per-sample scores of any explainer on the study's samples with the study's metric(s)."""
        return self.objective.evaluate(explainer)

    def held_out_scores(self, explainer: LRPBase) -> torch.Tensor | None:
        """Per-sample scores on the held-out samples (never tuned on); None without held-out samples."""
        return None if self.holdout is None else self._held_out_samples(explainer)

    def known_evidence(self) -> pd.DataFrame:
        """The best's relevance mass against its default's and the reference rows' (evidence masks; else empty)."""
        if self._known is None and self.holdout is not None:  # scored once: the report, note and table read it
            variant = self.space.variant_of(self.best_trial.params)
            against = [("default of its variant", f"{variant} default", self.space.variants[variant])]
            against += [("reference row", name, explainer) for name, explainer in self._references().items()]
            self._known = known_evidence(self._held_out_scorer(), self.best_explainer, against)
        return pd.DataFrame() if self._known is None else self._known.copy()

    def importances(self) -> dict[str, dict[str, float]]:
        """Optuna's parameter importances per variant (its default evaluator), where a variant has enough
        complete trials."""
        result = {}
        for variant in self.space.variants:
            trials = [t for t in self._complete() if self.space.variant_of(t.params) == variant]
            result[variant] = _importances(trials, self.study.directions)
        return {variant: values for variant, values in result.items() if values}

    def summary(self) -> pd.DataFrame:
        """Per variant: default and best score on the tuning and the held-out samples, the best parameters (and
        LRPLayerwise's rules in words), Optuna's importances, the counts of complete trials and of distinct
        configurations scored, whether the sampler searched the variant (``search_note`` says why not). With held-out
        samples, ``best default`` marks the default that scored best on the tuning samples, and ``best vs row:``
        compares the best with the row's default on the held-out samples (paired, see :meth:`comparisons`)."""
        defaults, importances = self._defaults(), self.importances()
        trials = self.study.get_trials(deepcopy=False)
        scored, sampled = configurations(trials, self.space), configurations(trials, self.space, sampled_only=True)
        best_default = self._best_default_variant()
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
            row["configurations"], row["searched"] = scored[variant], sampled[variant] > 0
            row["search_note"] = "" if sampled[variant] else _not_searched(self.space, variant)
            if self.holdout is not None and variant in defaults:
                row["best default"] = variant == best_default
                row.update(self._versus(base).as_dict(VS_ROW, with_n=False))
            rows.append(row)
        return pd.DataFrame(rows).set_index("explainer")

    def comparisons(self) -> pd.DataFrame:
        """The best configuration against its variant's default, the best default (the default that scored best on the
        tuning samples) and each captum reference row, on the held-out samples: their means, the mean paired
        difference (best minus the other), 95% bootstrap interval, Wilcoxon p; one row per comparison and metric."""
        if self.holdout is None:
            return pd.DataFrame()
        best = self.best_trial
        variant = self.space.variant_of(best.params)
        best_default = self._best_default_variant()
        against: list[tuple[str, str, Any]] = [("default of its variant", variant, self.space.variants[variant])]
        if best_default is not None:
            against.append(("best default", best_default, self.space.variants[best_default]))
        against += [("captum", name, explainer) for name, explainer in self._references().items()]
        ours = self._held_out_samples(self.best_explainer)
        rows = []
        for kind, name, explainer in against:
            key = f"{name} default" if kind != "captum" else name
            theirs = self._held_out_samples(explainer)
            for index, metric in enumerate(self._metric_names()):
                a, b = (ours[index], theirs[index]) if self.multi_objective else (ours, theirs)
                rows.append(
                    {
                        "against": kind,
                        "configuration": key,
                        "metric": metric,
                        "best": float(a.mean()),
                        "other": float(b.mean()),
                        **compare(a, b).as_dict(),
                    }
                )
        return pd.DataFrame(rows)

    def panel(self) -> pd.DataFrame:
        """The robustness panel (:mod:`tuner.evidence.panel`): per method its held-out score and rank under the
        objective and each panel metric, then Kendall's tau rows; ``attrs`` carry ``message``, ``seconds``,
        ``budget``, ``n_samples`` (scored) and ``n_held_out``. Empty without a panel; scored once and cached."""
        details = self.panel_details()
        if details is None:
            return pd.DataFrame()
        table = details.table()
        table.attrs.update(
            message=details.message,
            seconds=details.seconds,
            budget=details.budget,
            n_samples=details.n_samples,
            n_held_out=details.n_held_out,
        )
        return table

    def panel_details(self) -> Panel | None:
        """The panel's scores, ranks, taus and message (None without a panel or held-out samples), scored within
        its time budget (:meth:`panel_budget_seconds`)."""
        if not self.has_panel:
            return None
        assert self.holdout is not None
        if self._panel is None:
            methods, scorer, n_metrics = self._panel_methods(), self._held_out_scorer(), len(self.study.directions)
            self._panel = budgeted_panel(
                {label: scorer.scores(e).reshape(n_metrics, -1)[0] for label, e in methods.items()},
                {label: scorer.attributions(e) for label, e in methods.items()},
                self.holdout,
                self.panel_metrics,
                self.panel_budget_seconds(),
                objective=(f"{self._metric_names()[0]} (objective)", self.study.directions[0].name.lower()),
            )
        return self._panel

    @property
    def has_panel(self) -> bool:
        """Whether the report scores a robustness panel: panel metrics, held-out samples and a budget above 0."""
        return self.holdout is not None and bool(self.panel_metrics) and self.panel_budget > 0

    def panel_budget_seconds(self) -> float:
        """The panel's budget in seconds: ``panel_budget`` times the trials' time, at least ``panel_min_seconds``."""
        return panel_seconds(self.panel_budget, self.panel_min_seconds, trial_seconds(self.study))

    def _panel_methods(self) -> dict[str, Any]:
        """label -> explainer: each variant's default, its best where it differs, captum's rows."""
        return {**self._variant_methods(), **self._references()}

    def _variant_methods(self) -> dict[str, Any]:
        """label -> explainer: each variant's default and its best where it differs (scored held out together)."""
        defaults = {
            self.space.variant_of(t.params): t for t in self._complete() if t.user_attrs.get("default_configuration")
        }
        methods: dict[str, Any] = {}
        for variant, base in self.space.variants.items():
            best, default = self._best_of(variant), defaults.get(variant)
            same = best is not None and default is not None and best.params == default.params
            methods[f"{variant} default" + (" (= best)" if same else "")] = base
            if best is not None and not same:
                methods[f"{variant} best (#{best.number})"] = self.space.from_params(best.params)
        return methods

    def reference_row(self, explainer: Any) -> dict[str, Any]:
        """A reference row's held-out columns for the summary table: its held-out score and the best
        configuration against it (``best vs row:``); empty without held-out samples."""
        if self.holdout is None:
            return {}
        return {
            "default (held-out)": self._held_out(explainer),
            **self._versus(explainer).as_dict(VS_ROW, with_n=False),
        }

    def _versus(self, explainer: Any):
        """The best configuration against ``explainer`` on the held-out samples (the first metric with several)."""
        ours, theirs = self._held_out_samples(self.best_explainer), self._held_out_samples(explainer)
        return compare(ours[0], theirs[0]) if self.multi_objective else compare(ours, theirs)

    def choose_ig_steps(self) -> StepChoice | None:
        """Choose IntegratedGradients' steps for the reference rows by its completeness error on the first batch
        (of the held-out samples, else the tuned ones), and store the number with the study (``ig_steps``); None
        without reference rows."""
        from ._reference import choose_ig_steps  # captum imports matplotlib: not before the CLI configures logging

        if not self.references:
            return None
        x, y = next((self.holdout or self.objective)._chunks())
        model = self._model()
        with evaluation_mode(model):
            choice = choose_ig_steps(model, x, y)
        self.ig_steps = choice.n_steps
        self.study.set_user_attr("ig_steps", choice.n_steps)
        return choice

    def _references(self) -> dict[str, Any]:
        """captum's reference explainers by row name (none when ``references`` is off)."""
        from ._reference import captum_explainers

        if not self.references:
            return {}
        if self.ig_steps is None:
            self.choose_ig_steps()
        return captum_explainers(self._model(), self.ig_steps)

    def _model(self) -> torch.nn.Module:
        return next(iter(self.space.variants.values())).model

    def _best_default_variant(self) -> str | None:
        """The variant whose default configuration scored best on the tuning samples."""
        trials = [t for t in self._complete() if t.user_attrs.get("default_configuration")]
        if not trials:
            return None
        if self.multi_objective:
            return self.space.variant_of(self._choose_trial(among=trials).params)
        pick = max if self.study.direction.name == "MAXIMIZE" else min
        return self.space.variant_of(pick(trials, key=lambda t: t.value).params)

    def _held_out(self, explainer: Any):
        means = self._held_out_samples(explainer).mean(-1)
        return tuple(means.tolist()) if self.multi_objective else float(means)

    def _held_out_samples(self, explainer: Any) -> torch.Tensor:
        """Per-sample held-out scores, computed once per configuration (keyed by its class and settings: a best
        equal to its default is not rescored), its attributions kept for the panel."""
        return self._held_out_scorer().scores(explainer)

    def _held_out_scorer(self) -> HeldOutScorer:
        assert self.holdout is not None, "held-out scores need held-out samples"
        if self._scorer is None:
            self._scorer = HeldOutScorer(self.holdout, lambda: self._variant_methods().values())
        return self._scorer

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


def _not_searched(space: SearchSpace, variant: str) -> str:
    """Why the sampler never proposed ``variant``."""
    if not space.variants[variant].tunables():
        return "nothing to tune (no tunable)"
    if not space.tunables(variant):
        return "nothing to tune (all inert)"
    return "default only (budget too small)"


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
