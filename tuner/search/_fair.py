"""A fair budget over several explainers: every variant with something to tune is searched, none is re-run.

A study over several variants picks one through the categorical ``explainer`` parameter. Left to itself, a
sampler such as TPE concentrates on the variant whose default scored best after a few trials and may never
return to another (its row then says "best = default"), and it keeps proposing variants whose every tunable
is held at its default, whose trials can only repeat the default. :class:`FairSampler` wraps the study's
sampler (a name's or the user's object; every other parameter is left to it) and decides the ``explainer``
parameter only:

1. **Nothing to tune, never proposed.** A variant without free tunables (none, or all inert) is evaluated once,
   by its enqueued default, and never chosen again.
2. **A per-variant stage first.** While a variant with free tunables has fewer than
   ``min(5, n_trials // n_variants)`` sampled configurations (trials beyond the enqueued ones, complete or
   pruned, not answered from the study; running trials count, so workers sharing a study spread out), the
   trial goes to the variant with the fewest, in the order of the study's variants (round-robin). A stage trial
   is never pruned (:func:`in_stage`, :mod:`tuner.search._objective`): the pruner compares a trial with the study's
   best, of any variant, and would otherwise leave a weaker variant's row at its default.
3. **Then the sampler concentrates**, except that a proposal of a variant with nothing to tune goes to the
   free variant of the best trial so far.

Everything is read from the study at each trial, so it holds across workers and on resume. A trial answered
from the study (``repeat_of``, :mod:`tuner.search._objective`) does not count towards ``n_trials``
(:func:`counts_towards_budget`, :mod:`tuner.search._budget`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from ._space import EXPLAINER_PARAM, SearchSpace


def is_repeat(trial: FrozenTrial) -> bool:
    """A trial answered from the study: a configuration already evaluated."""
    return "repeat_of" in trial.user_attrs


def is_enqueued(trial: FrozenTrial) -> bool:
    """A default or other initial configuration put in the queue by the tuner, not proposed by the sampler."""
    return bool(trial.user_attrs.get("default_configuration") or trial.user_attrs.get("initial_configuration"))


def counts_towards_budget(trial: FrozenTrial) -> bool:
    """Complete and not answered from the study: what ``n_trials`` counts."""
    return trial.state == TrialState.COMPLETE and not is_repeat(trial)


def evaluated(trial: FrozenTrial) -> bool:
    """A configuration the study scored itself (complete or pruned, not a repeat)."""
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and not is_repeat(trial)


def configurations(trials: Iterable[FrozenTrial], space: SearchSpace, *, sampled_only: bool = False) -> dict[str, int]:
    """Per variant, the distinct configurations the study evaluated (complete or pruned); with ``sampled_only``,
    only those the sampler proposed (the enqueued defaults left out)."""
    counts = dict.fromkeys(space.variants, 0)
    for trial in trials:
        if evaluated(trial) and not (sampled_only and is_enqueued(trial)) and _has_variant(trial, space):
            counts[space.variant_of(trial.params)] += 1
    return counts


def in_stage(trial: optuna.Trial) -> bool:
    """Whether the study's :class:`FairSampler` chose this running trial's variant in the stage."""
    sampler = trial.study.sampler
    return isinstance(sampler, FairSampler) and trial.number in sampler.staged


def fair_sampler(base: optuna.samplers.BaseSampler, space: SearchSpace, quota: int) -> optuna.samplers.BaseSampler:
    """``base`` wrapped in a :class:`FairSampler` where the study searches several variants, else ``base``;
    ``quota``: the sampled configurations each free variant gets first (``Budget.stage_quota``)."""
    return FairSampler(base, space, quota) if space.several else base


class FairSampler(optuna.samplers.BaseSampler):
    """Delegates every parameter to ``base`` but the ``explainer`` choice (see the module docstring)."""

    def __init__(self, base: optuna.samplers.BaseSampler, space: SearchSpace, quota: int):
        self.base = base
        self.space = space
        self.free = [variant for variant in space.variants if space.tunables(variant)]
        self.quota = quota
        self._choices: dict[int, str] = {}  # trial number -> its variant, decided once per trial
        self.staged: set[int] = set()  # numbers of this process's running trials chosen by the stage

    def __str__(self) -> str:
        return f"FairSampler({self.base})"

    def reseed_rng(self) -> None:
        self.base.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        params = dict(self.base.sample_relative(study, trial, search_space))
        if EXPLAINER_PARAM in search_space:
            choice = self.choose(study, trial, params.get(EXPLAINER_PARAM))
            if choice is not None:  # else no proposal yet: sample_independent asks the base sampler
                params[EXPLAINER_PARAM] = choice
        return params

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        value = self.base.sample_independent(study, trial, param_name, param_distribution)
        return self.choose(study, trial, value) if param_name == EXPLAINER_PARAM else value

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._choices.pop(trial.number, None)
        self.staged.discard(trial.number)
        self.base.after_trial(study, trial, state, values)

    def choose(self, study: optuna.Study, trial: FrozenTrial, proposed: str | None) -> str | None:
        """The variant of ``trial``: the stage's, else ``proposed`` unless it has nothing to tune (None: no
        stage choice and no proposal yet)."""
        if not self.free:
            return proposed  # nothing to tune anywhere: only the enqueued defaults run (tuner._tune)
        if trial.number not in self._choices:
            choice = self._decide(study, trial, proposed)
            if choice is None:
                return None
            self._choices[trial.number] = choice
        return self._choices[trial.number]

    def _decide(self, study: optuna.Study, trial: FrozenTrial, proposed: str | None) -> str | None:
        fixed = trial.system_attrs.get("fixed_params") or {}
        if EXPLAINER_PARAM in fixed:  # an enqueued configuration: the queue decides, not the stage
            return str(fixed[EXPLAINER_PARAM])
        trials = study.get_trials(deepcopy=False)
        counts = configurations(trials, self.space, sampled_only=True)
        for other in trials:  # running trials of other workers are on their way to a configuration
            if other.state == TrialState.RUNNING and other.number != trial.number and not is_enqueued(other):
                if _has_variant(other, self.space):
                    counts[self.space.variant_of(other.params)] += 1
        behind = [variant for variant in self.free if counts[variant] < self.quota]
        if behind:
            self.staged.add(trial.number)
            return min(behind, key=lambda variant: counts[variant])  # min keeps the variants' order on ties
        if proposed is None or proposed in self.free:
            return proposed
        return self._best_free(study, trials) or min(self.free, key=lambda variant: counts[variant])

    def _best_free(self, study: optuna.Study, trials: list[FrozenTrial]) -> str | None:
        """The free variant of the best complete trial (single objective), None without one."""
        if len(study.directions) != 1:
            return None
        complete = [
            t
            for t in trials
            if t.state == TrialState.COMPLETE and _has_variant(t, self.space) and t.params[EXPLAINER_PARAM] in self.free
        ]
        if not complete:
            return None
        pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
        return str(pick(complete, key=lambda t: float(t.values[0])).params[EXPLAINER_PARAM])


def _has_variant(trial: FrozenTrial, space: SearchSpace) -> bool:
    return EXPLAINER_PARAM in trial.params and trial.params[EXPLAINER_PARAM] in space.variants
