"""Tests of ``tuner.tune()``: properties of the study it runs on a small CNN trained on scikit-learn's digits.

Each test runs a few trials on 8 fixed samples, so the whole file takes seconds on a CPU.
"""

from __future__ import annotations

import copy
import math
from importlib import metadata
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
import torch
from helpers import run_tune
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from zennit.composites import LayerMapComposite, layer_map_base
from zennit.rules import Epsilon

from explainers import LRPEpsilonGammaBox, LRPEpsilonPlus, LRPUniformEpsilon
from tuner import ALL_VARIANTS, StudyMismatchError, TuneResult
from tuner.evidence._provenance import model_fingerprint

N_SAMPLES = 8
FAST = {"n_samples": N_SAMPLES, "show_progress_bar": False}
BOUNDS = {"low": -1.0, "high": 1.0}  # the digits are scaled to [-1, 1]: EpsilonGammaBox's input bounds
UNSTABLE_BELOW = 1e-2  # the test variants below misbehave for epsilon < this (2/3 of the log range)

optuna.logging.set_verbosity(optuna.logging.WARNING)


# -- the model and its data -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    """A tiny CNN trained (seeded, a few seconds) on digits; returns (model, held-out inputs, labels)."""
    data = load_digits()
    inputs = torch.tensor(data.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # (N, 1, 8, 8) in [-1, 1]
    labels = torch.tensor(data.target)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        order = torch.randperm(len(inputs))
        train, held_out = order[:1400], order[1400:]
        model = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 32),
            nn.ReLU(),
            nn.Linear(32, 10),
        )
        optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(8):
            shuffled = train[torch.randperm(len(train))]
            for start in range(0, len(shuffled), 64):
                batch = shuffled[start : start + 64]
                loss = nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(inputs[held_out]).argmax(1) == labels[held_out]).float().mean().item()
    assert accuracy >= 0.9, f"the test model is too weak to tune explanations for: {accuracy:.3f}"
    return model, inputs[held_out], labels[held_out]


@pytest.fixture(scope="module")
def gamma_box_study(digits):
    """One in-memory EpsilonGammaBox study, shared by the read-only tests below."""
    model, inputs, labels = digits
    return run_tune(LRPEpsilonGammaBox, model, (inputs, labels), n_trials=8, explainer_kwargs=BOUNDS, **FAST)


# -- explainers that misbehave on purpose in part of their search space ----------------------------------
class _UnstableEpsilon(LRPUniformEpsilon):
    """LRP-epsilon whose dense layers turn NaN for epsilon < 1e-2: an unstable region of the space."""

    def build_composite(self, model):
        if self.epsilon >= UNSTABLE_BELOW:
            return super().build_composite(model)
        return LayerMapComposite(layer_map=layer_map_base() + [(nn.Linear, Epsilon(epsilon=float("nan")))])


class _ReversedEpsilon(LRPUniformEpsilon):
    """LRP-epsilon whose relevance is negated for epsilon < 1e-2: those configurations rank every pixel
    backwards, so every sample scores clearly worse than with the default."""

    def attribute(self, inputs, targets):
        relevance = super().attribute(inputs, targets)
        return -relevance if self.epsilon < UNSTABLE_BELOW else relevance


# -- helpers ----------------------------------------------------------------------------------------------
def _complete(study: optuna.Study):
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _finished(study: optuna.Study):
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def _stored_studies(tmp_path: Path):
    """{study name: number of trials} in the test's SQLite file (empty when the file was never created)."""
    if not (tmp_path / "study.db").exists():
        return {}
    return {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(_sqlite(tmp_path))}


def _better_or_equal(study: optuna.Study, a: float, b: float) -> bool:
    return a >= b if study.direction == optuna.study.StudyDirection.MAXIMIZE else a <= b


# -- tune() end to end ------------------------------------------------------------------------------------
def test_objective_is_not_flat_and_best_is_the_best_trial(gamma_box_study):
    """Configurations score differently, best_value is the maximum over complete trials (AbPC maximises) and
    default_value is trial 0's (the default configuration), not some other trial's."""
    result = gamma_box_study
    assert isinstance(result, TuneResult)
    values = [t.value for t in _complete(result.study)]
    assert len(values) >= 4
    assert len({round(v, 9) for v in values}) >= 3, f"flat objective: {values}"
    assert all(math.isfinite(v) for v in values)
    assert result.study.direction == optuna.study.StudyDirection.MAXIMIZE  # AbPC: higher is better
    assert result.best_value == max(values)
    assert result.default_value == result.study.trials[0].value


def test_trial_zero_is_the_default_configuration(gamma_box_study, digits):
    result = gamma_box_study
    first = result.study.trials[0]
    default = LRPEpsilonGammaBox(digits[0], **BOUNDS)
    assert first.user_attrs.get("default_configuration") is True
    assert first.state == TrialState.COMPLETE
    assert first.params == {"epsilon": default.epsilon, "gamma": default.gamma}
    assert result.default_value == first.value
    assert [t.number for t in result.study.trials if t.user_attrs.get("default_configuration")] == [0]


def test_best_explainer_reproduces_the_best_value(gamma_box_study):
    result = gamma_box_study
    explainer = result.best_explainer
    assert type(explainer) is LRPEpsilonGammaBox
    assert {name: getattr(explainer, name) for name in ("epsilon", "gamma")} == result.best_params
    assert explainer.low == BOUNDS["low"] and explainer.high == BOUNDS["high"]  # explainer_kwargs kept
    scores = result.scores(explainer)
    assert scores.shape == (N_SAMPLES,)
    assert scores.mean().item() == pytest.approx(result.best_value, abs=1e-6)
    # the check can fail: the default configuration scores its own, different value
    default = result.space.from_params(result.study.trials[0].params)
    assert result.scores(default).mean().item() == pytest.approx(result.default_value, abs=1e-6)
    if result.best_trial.number != 0:
        assert result.scores(default).mean().item() != pytest.approx(result.best_value, abs=1e-6)


def test_one_class_uses_the_tunables_own_names_and_ranges(gamma_box_study):
    result = gamma_box_study
    tunables = LRPEpsilonGammaBox.TUNABLES
    for trial in result.study.trials:
        assert set(trial.params) == {"epsilon", "gamma"}
        for name, value in trial.params.items():
            spec = tunables[name][1]
            assert spec["low"] <= value <= spec["high"]
            distribution = trial.distributions[name]
            assert isinstance(distribution, FloatDistribution)
            assert (distribution.low, distribution.high, distribution.log) == (spec["low"], spec["high"], True)
    sampled = [t.params for t in result.study.trials[1:]]
    assert len({(p["epsilon"], p["gamma"]) for p in sampled}) == len(sampled)  # new configurations


def test_per_sample_scores_are_reported_as_intermediate_values(gamma_box_study):
    for trial in _complete(gamma_box_study.study):
        assert sorted(trial.intermediate_values) == list(range(N_SAMPLES))
        assert trial.value == pytest.approx(sum(trial.intermediate_values.values()) / N_SAMPLES, abs=1e-6)


def test_summary_and_dataframe(gamma_box_study):
    result = gamma_box_study
    summary = result.summary()
    row = summary.loc["LRPEpsilonGammaBox"]
    assert row["default"] == result.default_value and row["best"] == result.best_value
    assert row["best_params"] == result.best_params
    frame = result.trials_dataframe()
    assert len(frame) == len(result.study.trials)
    assert {"params_epsilon", "params_gamma", "user_attrs_explainer"} <= set(frame.columns)


def test_user_attributes_record_the_evidence(gamma_box_study, digits):
    """Each trial records its explainer's parameters, the metric, the model's fingerprint (which changes
    with the weights) and the library versions."""
    model = digits[0]
    changed = copy.deepcopy(model)
    with torch.no_grad():
        next(changed.parameters()).add_(1.0)
    changed_sha = model_fingerprint(changed)["sha256"]
    for trial in gamma_box_study.study.trials:
        attrs = trial.user_attrs
        assert attrs["explainer"] == "LRPEpsilonGammaBox"
        assert {k: attrs["explainer_params"][k] for k in ("epsilon", "gamma")} == trial.params
        assert attrs["explainer_params"]["low"] == -1.0
        assert attrs["metric"] == "AbPC"
        assert isinstance(attrs["metric_settings"], dict)
        fingerprint = attrs["model"]
        assert fingerprint["parameters"] == sum(p.numel() for p in model.parameters())
        assert fingerprint["class"].endswith("Sequential")
        assert fingerprint["sha256"] == model_fingerprint(model)["sha256"]  # the weights of this model
        assert fingerprint["sha256"] != changed_sha  # and not of any model with its architecture
        versions = attrs["library_versions"]
        for library in ("torch", "optuna", "zennit"):
            assert versions[library] == metadata.version(library)


def test_model_fingerprint_tells_weights_apart(digits, gamma_box_study):
    model, inputs, labels = digits
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed[-1].bias[0] += 1e-3
    result = run_tune(LRPUniformEpsilon, changed, (inputs, labels), n_trials=1, **FAST)
    before = gamma_box_study.study.trials[0].user_attrs["model"]
    after = result.study.trials[0].user_attrs["model"]
    assert after["parameters"] == before["parameters"]
    assert after["sha256"] != before["sha256"]
    same = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=1, **FAST)
    assert same.study.trials[0].user_attrs["model"] == before


def test_minimize_metric_best_is_at_most_the_default(digits):
    model, inputs, labels = digits
    result = run_tune(LRPUniformEpsilon, model, (inputs, labels), metric="lerf", n_trials=6, **FAST)
    assert result.study.direction == optuna.study.StudyDirection.MINIMIZE
    assert result.best_value <= result.default_value
    assert result.best_value == min(t.value for t in _complete(result.study))
    assert result.scores(result.best_explainer).mean().item() == pytest.approx(result.best_value, abs=1e-6)


# -- several explainers -----------------------------------------------------------------------------------
def test_cross_variant_search(digits):
    model, inputs, labels = digits
    classes = [LRPEpsilonGammaBox, LRPUniformEpsilon]
    result = run_tune(classes, model, (inputs, labels), n_trials=8, sampler="random", explainer_kwargs=BOUNDS, **FAST)
    names = [cls.__name__ for cls in classes]
    trials = result.study.trials
    # each variant's default comes first, enqueued
    for trial, cls in zip(trials[:2], classes):
        default = cls(model, **BOUNDS) if cls is LRPEpsilonGammaBox else cls(model)
        assert trial.user_attrs.get("default_configuration") is True
        assert trial.params == {
            "explainer": cls.__name__,
            **{f"{cls.__name__}.{k}": getattr(default, k) for k in cls.TUNABLES},
        }
    assert sum(bool(t.user_attrs.get("default_configuration")) for t in trials) == 2
    # a categorical 'explainer' and only the chosen variant's own (prefixed) tunables
    for trial in trials:
        variant = trial.params["explainer"]
        assert trial.distributions["explainer"] == CategoricalDistribution(names)
        tunables = dict(zip(names, (cls.TUNABLES for cls in classes)))[variant]
        assert set(trial.params) == {"explainer"} | {f"{variant}.{name}" for name in tunables}
        assert trial.user_attrs["explainer"] == variant
        for name, (_, spec) in tunables.items():
            assert spec["low"] <= trial.params[f"{variant}.{name}"] <= spec["high"]
            assert trial.user_attrs["explainer_params"][name] == trial.params[f"{variant}.{name}"]
    assert {t.params["explainer"] for t in trials[2:]} == set(names)  # the sampler visits both
    # the best explainer is the best trial's variant and reproduces its value
    best = result.best_explainer
    assert type(best).__name__ == result.best_params["explainer"]
    assert result.scores(best).mean().item() == pytest.approx(result.best_value, abs=1e-6)
    assert result.best_value >= max(t.value for t in trials[:2] if t.state == TrialState.COMPLETE)
    summary = result.summary()
    assert list(summary.index) == names
    for trial in trials[:2]:
        assert summary.loc[trial.params["explainer"], "default"] == trial.value


def test_all_variants_when_no_class_is_given(digits):
    model, inputs, labels = digits
    result = run_tune(None, model, (inputs, labels), n_trials=4, explainer_kwargs=BOUNDS, **FAST)
    trials = result.study.trials
    assert [t.params["explainer"] for t in trials] == [cls.__name__ for cls in ALL_VARIANTS]
    assert all(t.user_attrs.get("default_configuration") for t in trials)
    assert all(t.state == TrialState.COMPLETE for t in trials)


# -- data forms -------------------------------------------------------------------------------------------
class _DigitDataset(Dataset):
    def __init__(self, inputs, labels):
        self.inputs, self.labels = inputs, labels

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, index):
        return self.inputs[index], int(self.labels[index])


def _forms(inputs, labels):
    return {
        "tuple": (inputs, labels),
        "tensor": inputs,
        "tensor_dataset": TensorDataset(inputs, labels),
        "dataset": _DigitDataset(inputs, labels),
        "dataloader": DataLoader(TensorDataset(inputs, labels), batch_size=50, shuffle=False),
        "unlabelled_dataloader": DataLoader(inputs, batch_size=50, shuffle=False),
    }


def test_data_forms_give_the_same_fixed_samples(digits):
    model, inputs, labels = digits
    results = {
        name: run_tune(LRPUniformEpsilon, model, data, n_trials=1, **FAST)
        for name, data in _forms(inputs, labels).items()
    }
    reference = results["tuple"].objective
    assert reference.inputs.shape == (N_SAMPLES, *inputs.shape[1:])
    # the samples are distinct rows of the data, and the labelled forms' targets are their labels
    rows = (reference.inputs.flatten(1)[:, None] == inputs.flatten(1)[None]).all(-1).float().argmax(1)
    assert torch.equal(inputs[rows], reference.inputs)
    assert len(set(rows.tolist())) == N_SAMPLES
    assert torch.equal(reference.targets, labels[rows])
    with torch.no_grad():
        predictions = model(reference.inputs).argmax(1)
    for name, result in results.items():
        assert torch.equal(result.objective.inputs, reference.inputs), name
        expected = predictions if name in ("tensor", "unlabelled_dataloader") else reference.targets
        assert torch.equal(result.objective.targets, expected), name
        assert result.objective.targets.dtype == torch.long
    for name in ("tensor_dataset", "dataset", "dataloader"):  # same samples, same targets: same score
        assert results[name].study.trials[0].value == results["tuple"].study.trials[0].value, name


def test_tensor_only_data_explains_the_predictions(digits):
    """With no labels, targets are the model's predictions, also where they differ from the labels."""
    model, inputs, labels = digits
    with torch.no_grad():
        wrong = (model(inputs).argmax(1) != labels).nonzero().flatten()
    assert len(wrong) > 0  # a held-out error exists at >= 90% accuracy on ~400 digits
    chosen = inputs[wrong[:N_SAMPLES]]
    result = run_tune(LRPUniformEpsilon, model, chosen, n_trials=1, **FAST)
    with torch.no_grad():
        assert torch.equal(result.objective.targets, model(result.objective.inputs).argmax(1))
    assert not torch.equal(result.objective.targets, labels[wrong[:N_SAMPLES]])


def test_seed_picks_the_samples(digits):
    model, inputs, labels = digits
    first = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=1, seed=0, **FAST).objective.inputs
    other = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=1, seed=1, **FAST).objective.inputs
    assert not torch.equal(first, other)


# -- reproducibility and resume ---------------------------------------------------------------------------
def test_same_seed_same_data_gives_identical_trials(digits):
    model, inputs, labels = digits

    def run(seed):
        result = run_tune(
            LRPEpsilonGammaBox, model, (inputs, labels), n_trials=6, seed=seed, explainer_kwargs=BOUNDS, **FAST
        )
        return [(t.state, t.params, t.value) for t in result.study.trials]

    first = run(0)
    assert run(0) == first
    assert [params for _, params, _ in run(1)[1:]] != [params for _, params, _ in first[1:]]


def test_resume_continues_the_stored_study(digits, tmp_path):
    model, inputs, labels = digits
    options = {"storage": _sqlite(tmp_path), "study_name": "resume", **FAST}
    first = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=4, **options)
    before = [(t.number, t.params, t.value) for t in _finished(first.study)]
    assert len(before) == 4

    second = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=6, **options)
    study = optuna.load_study(study_name="resume", storage=_sqlite(tmp_path))
    finished = _finished(study)
    assert len(finished) == 6
    assert [(t.number, t.params, t.value) for t in finished[:4]] == before  # the first run's trials kept
    assert [t.number for t in study.trials if t.user_attrs.get("default_configuration")] == [0]
    epsilons = [t.params["epsilon"] for t in study.trials]
    assert len(set(epsilons)) == len(epsilons), f"the resumed run drew configurations again: {epsilons}"
    assert not any("repeat_of" in t.user_attrs for t in study.trials)
    assert second.best_value == max(t.value for t in _complete(study))
    assert second.scores(second.best_explainer).mean().item() == pytest.approx(second.best_value, abs=1e-6)

    # n_trials is the study's total: asking for fewer than it has adds nothing
    n_before = len(study.trials)
    run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=6, **options)
    assert len(optuna.load_study(study_name="resume", storage=_sqlite(tmp_path)).trials) == n_before


def test_resumed_study_is_reproducible(digits, tmp_path):
    """Stopping after 3 trials and resuming to 5 gives the same study each time it is done so."""
    model, inputs, labels = digits

    def run(name):
        options = {"storage": _sqlite(tmp_path), "study_name": name, **FAST}
        run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=3, **options)
        result = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=5, **options)
        return [(t.params, t.value) for t in result.study.trials]

    assert run("a") == run("b")


# -- failures and pruning ---------------------------------------------------------------------------------
def test_nan_configuration_fails_its_trial_and_the_study_goes_on(digits):
    model, inputs, labels = digits
    result = run_tune(_UnstableEpsilon, model, (inputs, labels), n_trials=5, sampler="random", **FAST)
    trials = result.study.trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed, "no configuration fell in the unstable region"
    for trial in failed:
        assert trial.params["epsilon"] < UNSTABLE_BELOW
        assert "NaN" in trial.user_attrs["fail_reason"]
        assert trial.value is None
    for trial in _complete(result.study):
        assert trial.params["epsilon"] >= UNSTABLE_BELOW and math.isfinite(trial.value)
    assert len(_finished(result.study)) == 5  # failures do not count towards n_trials
    assert max(t.number for t in _complete(result.study)) > min(t.number for t in failed)  # it went on
    assert result.best_trial.state == TrialState.COMPLETE


@pytest.mark.parametrize("together", [1, 4])
def test_configuration_that_raises_fails_its_trial(digits, monkeypatch, together):
    """Alone, and among trials scored together: a failure in their shared pass fails only the configuration that
    raises (each is attributed alone again), the others of its group complete."""
    import explainers.engine._many as many

    model, inputs, labels = digits
    attribute = LRPUniformEpsilon.attribute
    shared = many._shared_forward

    def flaky(self, x, y):
        if self.epsilon < UNSTABLE_BELOW:
            raise RuntimeError("out of memory (simulated)")
        return attribute(self, x, y)

    def flaky_shared(model, composites, explainers, *args):
        if any(e.epsilon < UNSTABLE_BELOW for e in explainers):
            raise RuntimeError("out of memory (simulated)")
        return shared(model, composites, explainers, *args)

    monkeypatch.setattr(LRPUniformEpsilon, "attribute", flaky)
    monkeypatch.setattr(many, "_shared_forward", flaky_shared)
    result = run_tune(
        LRPUniformEpsilon, model, (inputs, labels), n_trials=4, sampler="random", trials_together=together, **FAST
    )
    failed = [t for t in result.study.trials if t.state == TrialState.FAIL]
    assert failed and all(t.params["epsilon"] < UNSTABLE_BELOW for t in failed)
    assert all(t.user_attrs["fail_reason"] == "RuntimeError: out of memory (simulated)" for t in failed)
    assert len(_finished(result.study)) == 4


def test_wilcoxon_prunes_clearly_worse_configurations(digits):
    """With the default batch_size (16, more than the 8 samples) the pruner still gets a point to stop at."""
    model, inputs, labels = digits
    result = run_tune(  # one trial at a time: a trial scored beside the default has no complete trial to lose to
        _ReversedEpsilon,
        model,
        (inputs, labels),
        n_trials=8,
        sampler="random",
        pruner="wilcoxon",
        trials_together=1,
        **FAST,
    )
    trials = result.study.trials
    reversed_ = [t for t in trials[1:] if t.params["epsilon"] < UNSTABLE_BELOW]
    assert reversed_, "no configuration fell in the reversed region"
    for trial in reversed_:
        assert trial.state == TrialState.PRUNED
        assert trial.user_attrs["pruned_after_samples"] == 4
        # the second half was never scored; step 8 (one past the last sample) holds the mean of the four scored
        assert sorted(trial.intermediate_values) == [0, 1, 2, 3, N_SAMPLES]
    for trial in _complete(result.study):
        assert sorted(trial.intermediate_values) == list(range(N_SAMPLES))
    assert trials[0].state == TrialState.COMPLETE  # the default is never pruned

    # without a pruner the same configurations complete, and score clearly worse than the default
    unpruned = run_tune(
        _ReversedEpsilon, model, (inputs, labels), n_trials=8, sampler="random", pruner="none", batch_size=4, **FAST
    )
    assert all(t.state == TrialState.COMPLETE for t in unpruned.study.trials)
    default = unpruned.study.trials[0]
    for trial in unpruned.study.trials[1:]:
        if trial.params["epsilon"] < UNSTABLE_BELOW:
            assert all(trial.intermediate_values[s] < default.intermediate_values[s] for s in range(N_SAMPLES))


class _PruneOddTrials(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return trial.number % 2 == 1


def test_a_pruned_trial_shows_the_mean_of_the_samples_it_scored(digits):
    """The dashboard shows a pruned trial's value: the mean of its scored samples, never one sample's score."""
    model, inputs, labels = digits
    result = run_tune(
        LRPUniformEpsilon, model, (inputs, labels), n_trials=3, sampler="random", pruner=_PruneOddTrials(), **FAST
    )
    pruned = result.study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    assert len(pruned) == 2
    for trial in pruned:
        scored = [trial.intermediate_values[step] for step in range(4)]
        assert trial.value == pytest.approx(sum(scored) / 4, abs=1e-6)
        assert trial.intermediate_values[N_SAMPLES] == trial.value
        assert trial.value != scored[-1]  # Optuna's default: the last sample's score


def test_the_progress_bar_counts_complete_trials_out_of_n_trials(digits, capsys):
    """The bar's total is n_trials (not Optuna's internal cap), its count the complete trials; its postfix
    gives the pruned and failed trials and the best value."""
    model, inputs, labels = digits
    options = {key: value for key, value in FAST.items() if key != "show_progress_bar"}
    result = run_tune(
        LRPUniformEpsilon,
        model,
        (inputs, labels),
        n_trials=3,
        sampler="random",
        pruner=_PruneOddTrials(),
        show_progress_bar=True,
        **options,
    )
    shown = capsys.readouterr().err.replace("\r", "\n").splitlines()
    bars = [line for line in shown if line.startswith("trials:")]
    assert bars and all("/3 " in line for line in bars), bars
    last = bars[-1]
    assert "3/3 " in last and "pruned=2" in last and "failed=0" in last
    assert f"best={result.best_value:.4g}" in last


def test_the_study_note_says_what_the_steps_are(digits):
    model, inputs, labels = digits
    result = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=1, **FAST)
    note = optuna_dashboard.get_note(result.study)
    assert "score of **sample *i***" in note and f"at step {N_SAMPLES}, the mean" in note
    several = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=1, metric=["abpc", "sparseness"], **FAST)
    assert "reports none" in optuna_dashboard.get_note(several.study)


def test_every_study_names_its_metrics(digits, tmp_path):
    """Plots and the dashboard say the metric's name, not "Objective 0", also on a resumed study."""
    model, inputs, labels = digits
    single = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=1, **FAST)
    assert single.study.metric_names == ["AbPC"]
    several = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=1, metric=["abpc", "sparseness"], **FAST)
    assert several.study.metric_names == ["AbPC", "Sparseness"]
    storage = f"sqlite:///{tmp_path / 'old.db'}"
    old = optuna.create_study(storage=storage, study_name="old", direction="maximize")  # no names, as before
    assert old.metric_names is None
    options = {"storage": storage, "study_name": "old", **FAST}
    resumed = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=1, **options)
    assert optuna.load_study(study_name="old", storage=storage).metric_names == ["AbPC"] == resumed.study.metric_names


def test_a_fully_scored_trial_is_not_pruned(digits):
    """Four samples are one chunk (the Wilcoxon test needs four pairs): no work is left to save, so every
    trial completes with the mean of its scores."""
    model, inputs, labels = digits
    result = run_tune(
        _ReversedEpsilon,
        model,
        (inputs, labels),
        n_trials=8,
        sampler="random",
        pruner="wilcoxon",
        n_samples=4,
        show_progress_bar=False,
    )
    assert any(t.params["epsilon"] < UNSTABLE_BELOW for t in result.study.trials)
    for trial in result.study.trials:
        assert trial.state == TrialState.COMPLETE
        assert trial.value == pytest.approx(sum(trial.intermediate_values.values()) / 4, abs=1e-6)


def test_without_a_pruner_trials_are_scored_batch_size_at_a_time(digits, monkeypatch):
    model, inputs, labels = digits
    seen = []
    attribute = LRPUniformEpsilon.attribute
    monkeypatch.setattr(LRPUniformEpsilon, "attribute", lambda self, x, y: seen.append(len(x)) or attribute(self, x, y))
    FAST = {**globals()["FAST"], "trials_together": 1}  # each trial's own attributions, as ``attribute`` sees them
    run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=2, pruner="none", n_holdout=0, batch_size=6, **FAST)
    assert seen[-2:] == [6, 2]  # the last trial: 8 samples, 6 at a time
    seen.clear()
    run_tune(
        LRPUniformEpsilon, model, (inputs, labels), n_trials=2, pruner="wilcoxon", n_holdout=0, batch_size=6, **FAST
    )
    assert seen[-2:] == [4, 4]  # with a pruner: halves of 4, so it may stop the trial after the first


# -- storage and artifacts --------------------------------------------------------------------------------
def test_heatmaps_are_uploaded_as_artifacts(digits, tmp_path):
    model, inputs, labels = digits
    storage = _sqlite(tmp_path)
    run_tune(
        LRPEpsilonGammaBox,
        model,
        (inputs, labels),
        n_trials=3,
        storage=storage,
        study_name="art",
        explainer_kwargs=BOUNDS,
        **FAST,
    )
    study = optuna.load_study(study_name="art", storage=storage)
    recorded = Path(study.user_attrs["artifact_dir"])
    assert not recorded.is_absolute()  # relative to the SQLite file: the two move together
    artifact_dir = tmp_path / recorded
    assert artifact_dir.parent == tmp_path and artifact_dir.is_dir()  # beside the SQLite file, not in the cwd
    complete = _complete(study)
    assert len(complete) == 3
    for trial in complete:
        metas = optuna.artifacts.get_all_artifact_meta(trial, storage=optuna.storages.get_storage(storage))
        assert metas, f"trial {trial.number} has no heatmap"
        for meta in metas:
            assert meta.mimetype == "image/png"
            path = artifact_dir / meta.artifact_id
            assert path.is_file()
            with Image.open(path) as image:  # a figure readable in the dashboard's card: square, >= 800 px
                assert image.format == "PNG" and image.width >= 800 and image.width == image.height
    # the stored user attributes survive the round trip through the database
    assert study.trials[0].user_attrs["explainer_params"]["gamma"] == study.trials[0].params["gamma"]
    assert study.user_attrs["metric"] == "AbPC"


def test_in_memory_study_writes_no_artifacts(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, inputs, labels = digits
    run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=2, **FAST)
    assert list(tmp_path.iterdir()) == []


# -- bad input --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "explainer_cls, options, message",
    [
        (LRPUniformEpsilon, {"n_trials": 0}, "n_trials"),
        (LRPUniformEpsilon, {"n_trials": -2}, "n_trials"),
        (LRPUniformEpsilon, {"sampler": "annealing"}, "unknown sampler 'annealing'"),
        (LRPUniformEpsilon, {"pruner": "hyperband"}, "unknown pruner 'hyperband'"),
        ([LRPUniformEpsilon, LRPEpsilonPlus], {"sampler": "grid"}, "grid sampler"),
    ],
)
def test_bad_input_raises_before_any_study_is_created(digits, tmp_path, explainer_cls, options, message):
    model, inputs, labels = digits
    with pytest.raises(ValueError, match=message):
        run_tune(
            explainer_cls,
            model,
            (inputs, labels),
            storage=_sqlite(tmp_path),
            study_name="bad",
            **{"n_trials": 2, **FAST, **options},
        )
    assert "bad" not in _stored_studies(tmp_path)


def test_grid_sampler_with_one_class_samples_grid_points(digits):
    model, inputs, labels = digits
    result = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=3, sampler="grid", **FAST)
    grid = result.space.grid()["epsilon"]
    for trial in result.study.trials[1:]:
        assert trial.params["epsilon"] in grid


@pytest.mark.parametrize("metric", ["lerf", "morf"])
def test_existing_study_measuring_something_else_is_refused(digits, tmp_path, metric):
    model, inputs, labels = digits
    options = {"storage": _sqlite(tmp_path), "study_name": "shared", **FAST}
    run_tune(LRPUniformEpsilon, model, (inputs, labels), metric="abpc", n_trials=2, **options)
    assert _stored_studies(tmp_path) == {"shared": 2}
    with pytest.raises(StudyMismatchError):
        run_tune(LRPUniformEpsilon, model, (inputs, labels), metric=metric, n_trials=4, **options)
    assert _stored_studies(tmp_path) == {"shared": 2}
    study = optuna.load_study(study_name="shared", storage=_sqlite(tmp_path))
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.user_attrs["metric"] == "AbPC"


def test_existing_study_of_another_explainer_is_refused(digits, tmp_path):
    model, inputs, labels = digits
    options = {"storage": _sqlite(tmp_path), "study_name": "shared", **FAST}
    run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=2, **options)
    with pytest.raises(StudyMismatchError, match="search space"):
        run_tune(LRPEpsilonGammaBox, model, (inputs, labels), n_trials=4, explainer_kwargs=BOUNDS, **options)
    assert _stored_studies(tmp_path) == {"shared": 2}


def test_sampler_and_pruner_objects_are_used_as_given(digits):
    """tune() takes Optuna sampler and pruner objects besides their names, and uses those very objects."""
    model, inputs, labels = digits
    sampler, pruner = optuna.samplers.RandomSampler(seed=3), optuna.pruners.MedianPruner(n_startup_trials=1)
    options = {key: value for key, value in FAST.items() if key not in ("sampler", "pruner")}
    result = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=3, sampler=sampler, pruner=pruner, **options)
    assert result.study.sampler is sampler and result.study.pruner is pruner
    assert len(_complete(result.study)) == 3
    with pytest.raises(TypeError, match="Optuna sampler"):
        run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=3, sampler=object(), **options)
