"""Trials scored together: companions asked from the sampler beside a trial, their attributions from one forward
pass per chunk, each told to the study with its own result and its own seconds."""

from __future__ import annotations

import optuna
import pytest
import torch
from helpers import run_tune
from optuna.trial import TrialState
from test_tune import FAST, UNSTABLE_BELOW, _UnstableEpsilon, digits  # noqa: F401 - the fixture

import tuner.search._objective as objective
from explainers import LRPUniformEpsilon
from tuner.search._study import median_trial_seconds, trial_seconds


def _groups(monkeypatch) -> list[int]:
    """The sizes of the groups of configurations attributed together (recorded, then attributed as before)."""
    sizes: list[int] = []
    shared = objective.attribute_many

    def recorded(explainers, inputs, targets, **kwargs):
        sizes.append(len(explainers))
        return shared(explainers, inputs, targets, **kwargs)

    monkeypatch.setattr(objective, "attribute_many", recorded)
    return sizes


def test_trials_scored_together_equal_trials_scored_one_at_a_time(digits, monkeypatch):  # noqa: F811
    model, inputs, labels = digits
    options = {"n_trials": 8, "sampler": "random", "pruner": "none", "batch_size": 8, "n_holdout": 0, **FAST}
    alone = run_tune(LRPUniformEpsilon, model, (inputs, labels), trials_together=1, **options)
    sizes = _groups(monkeypatch)
    together = run_tune(LRPUniformEpsilon, model, (inputs, labels), trials_together=4, **options)
    assert sizes == [4, 4]  # two groups, one chunk each: two forward passes for eight configurations
    values = {t.params.get("epsilon"): t.value for t in alone.study.trials}
    scored = {t.params.get("epsilon"): t.value for t in together.study.trials}
    assert scored.keys() == values.keys()  # the same proposals (the random sampler, seeded)
    for epsilon, value in values.items():
        assert scored[epsilon] == pytest.approx(value, rel=1e-5, abs=1e-6)
    grouped = [t for t in together.study.trials if "seconds" in t.user_attrs]
    assert len(grouped) == 8 and all(0 < t.user_attrs["seconds"] < t.duration.total_seconds() for t in grouped)
    assert trial_seconds(together.study) == pytest.approx(sum(t.user_attrs["seconds"] for t in grouped))
    assert median_trial_seconds(together.study) < min(t.duration.total_seconds() for t in grouped)


def test_trials_together_keep_the_budget_and_fail_only_their_own(digits, tmp_path):  # noqa: F811
    """Six counted trials, asked four at a time, and never seven: the companions only fill the room the budget
    leaves; a configuration whose relevance is NaN fails alone, its group's others complete."""
    model, inputs, labels = digits
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = run_tune(_UnstableEpsilon, model, (inputs, labels), n_trials=6, sampler="random", storage=storage, **FAST)
    trials = optuna.load_study(study_name=result.study.study_name, storage=storage).trials
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(counted) == 6 and not [t for t in trials if t.state == TrialState.RUNNING]
    assert failed and all(t.params["epsilon"] < UNSTABLE_BELOW and "NaN" in t.user_attrs["fail_reason"] for t in failed)
    grouped = [t for t in trials if "seconds" in t.user_attrs]
    assert any(t in grouped for t in failed) and any(t in grouped for t in counted)


def test_an_interrupt_among_trials_scored_together_leaves_none_running(digits, tmp_path, monkeypatch):  # noqa: F811
    model, inputs, labels = digits
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    evaluated = []
    evaluate = objective.TrialObjective._evaluate

    def interrupted(self, *args):
        evaluated.append(1)
        if len(evaluated) == 3:  # the third configuration of the first group
            raise KeyboardInterrupt
        return evaluate(self, *args)

    monkeypatch.setattr(objective.TrialObjective, "_evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_tune(
            LRPUniformEpsilon,
            model,
            (inputs, labels),
            n_trials=8,
            sampler="random",
            storage=storage,
            study_name="cut",
            pruner="none",
            batch_size=8,
            **FAST,
        )
    trials = optuna.load_study(study_name="cut", storage=storage).trials
    assert len(trials) == 4  # the first group was asked
    assert all(t.state == TrialState.FAIL for t in trials)


def test_an_explainer_with_its_own_attribute_is_not_bypassed_by_a_shared_pass(digits):  # noqa: F811
    """A subclass that overrides ``attribute`` (here: relevance negated) gets its own ``attribute`` called, in a
    group as alone."""
    from test_tune import _ReversedEpsilon

    from explainers.engine import attribute_many

    model, inputs, labels = digits
    x, y = inputs[:4], labels[:4]
    group = [_ReversedEpsilon(model).set_kwargs(epsilon=e) for e in (1e-3, 1e-4)]
    for explainer, relevance in zip(group, attribute_many(group, x, y)):
        alone = explainer.attribute(x, y)
        assert alone.abs().sum() > 0 and torch.equal(relevance, alone)
