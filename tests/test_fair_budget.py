"""A fair budget (tuner/_fair.py, tuner/_budget.py): variants with nothing to tune run once, every free variant is
searched before the sampler concentrates, repeats of evaluated configurations do not use up ``n_trials``."""

from __future__ import annotations

import logging

import optuna
import pytest
import torch
from helpers import run_tune
from optuna.trial import TrialState
from torch import nn

from tuner.search._budget import REPEAT_LIMIT, Budget, optimize
from tuner.search._fair import FairSampler, configurations, counts_towards_budget, is_enqueued, is_repeat
from tuner.search._space import SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)
BOUNDS = {"low": -1.0, "high": 1.0}
ONE_HEAD = ("LRPEpsilonPlus", "LRPEpsilonAlpha2Beta1")  # their epsilon touches only the single Linear: inert


@pytest.fixture(scope="module")
def one_head_cnn():
    """A tiny random CNN with a single Linear layer (so two variants have nothing left to tune) and its data."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * 8 * 8, 10),
        ).eval()
        inputs = torch.rand(32, 1, 8, 8) * 2 - 1
    return model, inputs, model(inputs).argmax(1).detach()


def tune_every_variant(one_head_cnn, **options):
    """``run_tune`` of every variant on eight of the one-head CNN's samples, unpruned, without a progress bar."""
    model, inputs, targets = one_head_cnn
    return run_tune(
        None,
        model,
        (inputs, targets),
        n_samples=8,
        explainer_kwargs=BOUNDS,
        show_progress_bar=False,
        pruner="none",
        **options,
    )


@pytest.fixture(scope="module")
def fair_study(one_head_cnn):
    return tune_every_variant(one_head_cnn, n_trials=16)


def test_variants_with_nothing_to_tune_run_once_and_free_ones_get_their_stage(fair_study):
    study, space = fair_study.study, fair_study.space
    trials = study.get_trials(deepcopy=False)
    assert set(ONE_HEAD) == {v for v in space.variants if not space.tunables(v)}  # the fixture's premise
    for variant in ONE_HEAD:
        assert sum(t.params.get("explainer") == variant for t in trials) == 1, variant
    quota = min(5, 16 // len(space.variants))
    sampled = configurations(trials, space, sampled_only=True)
    free = [v for v in space.variants if v not in ONE_HEAD]
    assert all(sampled[v] >= quota for v in free), sampled
    assert sum(map(counts_towards_budget, trials)) == 16
    stage = [t for t in trials if t.user_attrs.get("search_stage")]  # never pruned, never an enqueued default
    assert len(stage) >= quota * len(free) and all(t.state == TrialState.COMPLETE for t in stage)
    assert not any(map(is_enqueued, stage))


def test_summary_counts_configurations_and_marks_variants_never_searched(fair_study):
    summary = fair_study.summary()
    trials = fair_study.study.get_trials(deepcopy=False)
    for variant, row in summary.iterrows():
        scored = [
            t
            for t in trials
            if t.params.get("explainer") == variant
            and t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            and not is_repeat(t)
        ]
        assert row["configurations"] == len(scored)
        assert row["searched"] == (variant not in ONE_HEAD)
        assert ("nothing to tune" in row["search_note"]) == (variant in ONE_HEAD)
    assert summary.loc["LRPEpsilonPlus", "configurations"] == 1


class AlwaysProposes(optuna.samplers.RandomSampler):
    """A sampler that always proposes one explainer: a sampler that concentrates on an exhausted variant."""

    def __init__(self, variant: str):
        super().__init__(seed=0)
        self.variant = variant

    def sample_independent(self, study, trial, name, distribution):
        if name == "explainer":
            return self.variant
        return super().sample_independent(study, trial, name, distribution)


def test_a_proposal_of_a_variant_with_nothing_to_tune_goes_to_a_free_one(one_head_cnn):
    result = tune_every_variant(one_head_cnn, n_trials=20, sampler=AlwaysProposes("LRPEpsilonPlus"))
    trials = result.study.get_trials(deepcopy=False)
    assert [t.params["explainer"] for t in trials].count("LRPEpsilonPlus") == 1
    assert not any(map(is_repeat, trials))
    sampled = configurations(trials, result.space, sampled_only=True)
    # after the stage the proposal is replaced by the free variant of the best trial: more than the quota there
    assert max(sampled.values()) > Budget(n_trials=20).stage_quota(4)


def test_workers_sharing_a_study_spread_over_the_variants_during_the_stage(one_head_cnn):
    """Two samplers (two workers) on one study: a running trial of one counts for the other's choice."""
    model, *_ = one_head_cnn
    from explainers import DEFAULT_EXPLAINERS

    space = SearchSpace(
        [cls(model, **{k: v for k, v in BOUNDS.items() if k in cls.accepted_kwargs()}) for cls in DEFAULT_EXPLAINERS],
        fixed={v: ["epsilon"] for v in ONE_HEAD},
    )
    study = optuna.create_study(direction="maximize")
    workers = [
        FairSampler(optuna.samplers.RandomSampler(seed=s), space, Budget(n_trials=40).stage_quota(len(space.variants)))
        for s in (0, 1)
    ]
    chosen = []
    for sampler in workers * 2:  # four trials running at once, each asked through another worker's sampler
        study.sampler = sampler
        trial = study.ask()
        chosen.append(space.suggest(trial).__class__.__name__)
    assert sorted(chosen) == sorted(["LRPUniformEpsilon", "LRPEpsilonGammaBox"] * 2)  # round-robin, none exhausted
    assert not any(map(is_enqueued, study.trials))


def _objective_repeating(every: int):
    """An objective that answers every ``every``-th trial 'from the study' (as tuner.search._objective marks it)."""

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if every and trial.number % every == 0:
            trial.set_user_attr("repeat_of", 0)
        return x

    return objective


def test_repeats_do_not_use_up_the_budget():
    study = optuna.create_study(direction="maximize")
    optimize(study, _objective_repeating(2), Budget(n_trials=10), show_progress_bar=False, catch=())
    trials = study.get_trials(deepcopy=False)
    assert sum(map(counts_towards_budget, trials)) == 10
    assert sum(map(is_repeat, trials)) >= 9  # trials 0, 2, 4, ... were repeats and did not count


def test_an_exhausted_space_ends_with_one_line(caplog):
    study = optuna.create_study(direction="maximize")
    with caplog.at_level(logging.WARNING, logger="tuner"):
        optimize(study, _objective_repeating(1), Budget(n_trials=10), show_progress_bar=False, catch=())
    assert len(study.trials) == REPEAT_LIMIT
    lines = [r.getMessage() for r in caplog.records if "exhausted" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
