"""The held-out verdict: paired statistics in the summary (TuneResult.comparisons) and the robustness panel."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from helpers import run_tune
from scipy import stats
from sklearn.datasets import load_digits
from torch import nn

import tuner.evidence._heldout as heldout
from explainers import LRPEpsilonGammaBox, LRPUniformEpsilon
from metrics import Metric
from tuner import cli
from tuner.cli._parser import _panel
from tuner.evidence.panel._panel import TAU_HIGH, TAU_LOW, TAU_ROW, _disagreement, panel_metrics

optuna.logging.set_verbosity(optuna.logging.WARNING)
BOUNDS = {"low": -1.0, "high": 1.0}


@pytest.fixture(scope="module")
def digits():
    """A one-layer CNN trained for a second on 8×8 digits; (model, inputs, labels) of unseen digits."""
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32)[:, None] / 8 - 1
    y = torch.tensor(data.target)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10))
        optimiser = torch.optim.Adam(model.parameters(), 3e-3)
        for _ in range(3):
            for start in range(0, 1400, 64):
                loss = nn.functional.cross_entropy(model(x[start : start + 64]), y[start : start + 64])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    return model.eval(), x[1400:], y[1400:]


def tune_digits(digits, explainer_cls, **options):
    """``run_tune`` of ``explainer_cls`` on the digits fixture's model and samples, without a progress bar."""
    model, x, y = digits
    return run_tune(explainer_cls, model, (x, y), show_progress_bar=False, **options)


@pytest.fixture(scope="module")
def result(digits):
    return tune_digits(
        digits,
        [LRPEpsilonGammaBox, LRPUniformEpsilon],
        n_trials=6,
        n_samples=16,
        explainer_kwargs=BOUNDS,
        metric_kwargs={"n_steps": 8},
        panel=[
            "morf",
            ("abpc", {"baseline": "min", "n_steps": 8}),
            ("abpc", {"baseline": "zero"}),
            ("faithfulness_correlation", {"n_runs": 10, "n_repeats": 2}),
        ],
    )


def test_summary_compares_the_best_with_each_default_on_held_out_samples(result):
    summary = result.summary()
    best = result.best_explainer
    ours = result.held_out_scores(best)
    defaults = result._defaults()
    assert summary["best default"].sum() == 1  # the default chosen on the tuning samples
    assert summary.index[summary["best default"]][0] == max(defaults, key=defaults.get)
    for variant, base in result.space.variants.items():
        theirs = result.held_out_scores(base)
        row = summary.loc[variant]
        assert row["best vs row: diff"] == pytest.approx(float((ours - theirs).mean()), abs=1e-6)
        d = (ours - theirs).double().numpy()
        expected = 1.0 if not d.any() else stats.wilcoxon(d).pvalue
        assert row["best vs row: p"] == pytest.approx(expected, rel=1e-6)
        assert row["best vs row: CI low"] <= row["best vs row: diff"] <= row["best vs row: CI high"]


def test_comparisons_name_the_default_the_best_default_and_each_captum_row(result):
    table = result.comparisons()
    assert list(table["against"]) == ["default of its variant", "best default"] + ["captum"] * 3
    assert all("reference" in name for name in table["configuration"][2:])
    assert (table["diff"] - (table["best"] - table["other"])).abs().max() < 1e-6
    assert (table["n"] == len(result.holdout.inputs)).all()


def test_panel_ranks_scores_and_tau(result):
    table = result.panel()
    methods = table.drop(index=[TAU_ROW, TAU_LOW, TAU_HIGH])
    labels = [
        "AbPC (objective)",
        "MoRF",
        "AbPC (baseline=min, n_steps=8)",
        "AbPC (baseline=zero)",
        "FaithfulnessCorrelation (n_runs=10, 2 draws)",  # the budget (one minute at least) holds all its draws
    ]
    assert [c for c in table.columns if not c.endswith(" rank")] == labels
    assert sum(name.endswith("default") or "(= best)" in name for name in methods.index) == 2
    assert sum("captum" in name for name in methods.index) == 3
    for label in labels:
        expected = methods[label].rank(ascending=False, method="min").astype(int)
        assert (methods[f"{label} rank"].astype(int) == expected).all()  # all maximised: 1 = highest score
    for label in labels[1:]:
        tau = stats.kendalltau(methods[labels[0]], methods[label]).statistic
        assert table.loc[TAU_ROW, label] == pytest.approx(tau)
        assert table.loc[TAU_LOW, label] <= tau <= table.loc[TAU_HIGH, label]
    # the objective's column is the held-out objective score that the summary shows
    best_default = methods.index[methods.index.str.startswith("LRPUniformEpsilon default")][0]
    assert methods.loc[best_default, labels[0]] == pytest.approx(
        result.summary().loc["LRPUniformEpsilon", "default (held-out)"]
    )
    assert table.attrs["seconds"] > 0 and table.attrs["n_samples"] == len(result.holdout.inputs)
    assert table.attrs["budget"] == 60.0  # the trials took seconds: the floor
    assert result.panel() is not table and result.panel_details() is result.panel_details()  # scored once


def test_shared_faithfulness_correlation_perturbations_give_the_uncached_scores(result):
    """The panel computes FaithfulnessCorrelation's perturbed scores once per chunk for all methods; each
    method's scores equal the metric's own, computed afresh."""
    details = result.panel_details()
    index = list(details.scores.columns).index("FaithfulnessCorrelation (n_runs=10, 2 draws)")
    metric = dict(result.panel_metrics)["FaithfulnessCorrelation (n_runs=10, n_repeats=2)"]
    assert "_scores" not in vars(metric)  # the cache is gone after the panel
    x, y = result.holdout.inputs, result.holdout.targets
    for method, explainer in list(result._panel_methods().items())[:3]:
        fresh = metric.evaluate(x, y, explainer.attribute(x, y).detach())
        torch.testing.assert_close(details.samples[method][index], fresh, atol=1e-5, rtol=0)


def test_metrics_that_perturb_alike_share_their_forwards_and_keep_their_scores():
    """AbPC's most-relevant-first curve is MoRF's where their baselines agree, and p(x) is every metric's reference:
    the panel forwards each perturbed copy of a sample once, and every score equals the metric's own."""
    from metrics import IROF, AbPC, MoRF
    from tuner.evidence.panel._scoring import score_within_budget

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3)).eval()
    forwarded = []
    model.register_forward_hook(lambda module, args, out: forwarded.append(len(args[0])))
    x, y = torch.randn(3, 1, 8, 8), torch.tensor([0, 1, 2])
    maps = {f"method {i}": torch.randn(3, 1, 8, 8) for i in range(3)}
    maps["a copy of method 0"] = maps["method 0"] * 2  # ranks as method 0 does: the same copies
    metrics = [
        ("AbPC zero", AbPC(model, baseline="zero")),
        ("MoRF zero", MoRF(model, baseline="zero")),
        ("MoRF blur", MoRF(model, baseline="blur", blur_sigma=1.0)),
        ("IROF", IROF(model)),
    ]
    scored = score_within_budget(x, y, maps, metrics, budget=1e9)
    shared = sum(forwarded)
    forwarded.clear()
    for m, (label, metric) in enumerate(metrics):
        for method, attributions in maps.items():
            fresh = torch.cat([metric.evaluate(x[i : i + 1], y[i : i + 1], attributions[i : i + 1]) for i in range(3)])
            torch.testing.assert_close(scored.scores[method][m], fresh, atol=1e-6, rtol=0, msg=f"{label}, {method}")
    alone = sum(forwarded)
    # alone: 540 rows; shared: 284 (MoRF zero within AbPC zero, one p(x), the copy of method 0 free)
    assert shared < 0.6 * alone, (shared, alone)
    assert all("_scores" not in vars(metric) for _, metric in metrics)  # the cache is gone after the panel


def test_a_best_equal_to_its_default_is_one_row(result):
    methods = result.panel().drop(index=[TAU_ROW, TAU_LOW, TAU_HIGH]).index
    for variant in result.space.variants:
        rows = [name for name in methods if name.startswith(variant)]
        best = result._best_of(variant)
        same = best is not None and best.user_attrs.get("default_configuration")
        assert len(rows) == (1 if same else 2), rows


def test_the_line_when_the_objectives_winner_is_not_the_panels():
    ranks = pd.DataFrame(
        {"objective": [1, 2, 3], "a": [2, 1, 3], "b": [2, 1, 3], "c": [1, 2, 3]}, index=["X", "Y", "Z"]
    )
    message = _disagreement(ranks, "objective")
    assert message is not None and "(X)" in message and "1 of 3" in message and "Y is first under 2" in message
    assert _disagreement(ranks.assign(a=[1, 2, 3]), "objective") is None  # first under 2 of 3: a majority


def test_default_panel_and_its_choices(digits):
    model, x, _ = digits
    labels = [label for label, _ in panel_metrics(None, model, x[:4])]
    assert labels == [
        "AbPC (baseline=zero)",
        "AbPC (baseline=min)",
        "AbPC (baseline=blur)",
        "MoRF",
        "FaithfulnessCorrelation",
        "IROF",
    ]
    flat = [label for label, _ in panel_metrics(None, nn.Linear(64, 10), x[:4].flatten(1))]
    assert "IROF" not in flat and "AbPC (baseline=blur)" not in flat  # defined for images only
    assert panel_metrics(False, model, x) == [] and panel_metrics([], model, x) == []
    with pytest.raises(ValueError, match="panel: unknown metric"):
        panel_metrics(["nosuch"], model, x)
    with pytest.raises(ValueError, match="takes no setting 'colour'"):
        panel_metrics([("abpc", {"colour": 1})], model, x)
    fitted = dict(panel_metrics([("abpc", {"baseline": "min"})], model, x[:4]))["AbPC (baseline=min)"]
    assert torch.equal(fitted.baseline_data, x[:4])  # the data-wide baselines come from the study's samples


def test_no_panel_gives_an_empty_table(digits):
    quiet = tune_digits(digits, LRPUniformEpsilon, n_trials=2, n_samples=4, panel=False, metric_kwargs={"n_steps": 4})
    assert quiet.panel().empty and quiet.panel_details() is None


def test_panel_option_syntax_and_bad_names_fail_before_any_work(tmp_path, capsys):
    assert _panel("abpc:baseline=blur:blur_sigma=2, morf") == [
        ("abpc", {"baseline": "blur", "blur_sigma": 2}),
        ("morf", {}),
    ]
    storage = tmp_path / "t.db"
    code = cli.main(["run", "--panel", "nosuch", "--storage", f"sqlite:///{storage}", "--out", str(tmp_path / "o")])
    assert code == 2 and "panel: unknown metric 'nosuch'" in capsys.readouterr().err
    assert not storage.exists() and not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--panel", "morf", "--no-panel"])
    assert exit_.value.code == 2


def test_held_out_scores_and_the_panel_share_one_attribution_per_configuration(digits, monkeypatch):
    """The summary's held-out scores and the panel score each configuration from the same attributions: every
    configuration is attributed once per held-out chunk, however many of the panel's metrics score it."""
    from explainers import LRPBase

    result = tune_digits(
        digits, [LRPUniformEpsilon], n_trials=3, n_samples=8, panel=["morf", ("abpc", {"baseline": "min"})]
    )
    held_out = result.holdout.inputs
    calls: dict[str, int] = {}
    original, original_many, inside_many = LRPBase.attribute, heldout.attribute_many, []

    def count(explainer, inputs):
        if inputs.shape == held_out.shape and torch.equal(inputs, held_out) and not inside_many:
            key = json.dumps(explainer.settings(), sort_keys=True, default=str)
            calls[key] = calls.get(key, 0) + 1

    def counting(self, inputs, targets, *args, **kwargs):
        count(self, inputs)
        return original(self, inputs, targets, *args, **kwargs)

    def counting_many(explainers, inputs, targets):  # configurations attributed together: each counted once
        for explainer in explainers:
            count(explainer, inputs)
        inside_many.append(True)
        try:
            return original_many(explainers, inputs, targets)
        finally:
            inside_many.pop()

    monkeypatch.setattr(LRPBase, "attribute", counting)
    monkeypatch.setattr(heldout, "attribute_many", counting_many)
    result.summary()
    result.panel()
    methods = [m for m in result._panel_methods().values() if isinstance(m, LRPBase)]
    assert len(calls) == len(methods) >= 2 and set(calls.values()) == {1}
    panel = result.panel_details()
    for label, explainer in result._panel_methods().items():
        fresh = dict(result.panel_metrics)["MoRF"].evaluate(
            held_out, result.holdout.targets, explainer.attribute(held_out, result.holdout.targets).detach()
        )
        torch.testing.assert_close(panel.samples[label][1], fresh.float(), atol=1e-6, rtol=0)


def test_a_panel_metric_equal_to_the_objective_is_shown_once(digits, monkeypatch):
    """The default panel's AbPC with a blur baseline is the default objective on images: it is not scored again,
    not listed twice, and not counted among the panel metrics; the objective's column holds what it gives."""
    from metrics import AbPC

    two_abpc = [("abpc", {"baseline": "blur", "n_steps": 4}), ("abpc", {"baseline": "min", "n_steps": 4})]
    result = tune_digits(
        digits, [LRPUniformEpsilon], n_trials=2, n_samples=8, metric_kwargs={"n_steps": 4}, panel=two_abpc
    )
    (_, blur), (_, black) = result.panel_metrics
    evaluated: list[Metric] = []
    original = AbPC.evaluate

    def recording(self, *args, **kwargs):
        evaluated.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AbPC, "evaluate", recording)
    panel = result.panel_details()
    assert not any(m is blur for m in evaluated) and any(m is black for m in evaluated)  # the repeat is not rescored
    monkeypatch.setattr(AbPC, "evaluate", original)
    assert list(panel.scores.columns) == ["AbPC (objective)", "AbPC (baseline=min, n_steps=4)"]
    assert panel.repeats == ("AbPC (baseline=blur, n_steps=4)",)
    assert any("baseline=blur, n_steps=4) is the objective: shown once" in line for line in panel.lines())
    held_out, targets = result.holdout.inputs, result.holdout.targets
    for label, explainer in result._panel_methods().items():
        maps = explainer.attribute(held_out, targets).detach()
        torch.testing.assert_close(
            panel.samples[label][0], blur.evaluate(held_out, targets, maps).float(), atol=1e-6, rtol=0
        )
        torch.testing.assert_close(
            panel.samples[label][1], black.evaluate(held_out, targets, maps).float(), atol=1e-6, rtol=0
        )


def test_metrics_are_the_same_only_with_equal_settings_model_and_baseline_data(digits):
    from metrics import get_metric
    from tuner.evidence.panel._panel import same_metric

    model, x, _ = digits
    blur = get_metric("abpc", model, baseline="blur", blur_sigma=1.0)
    assert same_metric(blur, get_metric("abpc", model, baseline="blur", blur_sigma=1.0))
    assert not same_metric(blur, get_metric("abpc", model, baseline="blur", blur_sigma=2.0))
    assert not same_metric(blur, get_metric("morf", model, baseline="blur", blur_sigma=1.0))
    assert not same_metric(blur, get_metric("abpc", nn.Sequential(model), baseline="blur", blur_sigma=1.0))
    assert not same_metric(blur, get_metric("abpc", model, baseline="blur", blur_sigma=1.0, prob_fn=lambda z: z))
    black = [get_metric("abpc", model, baseline="min") for _ in range(3)]
    black[0].fit_baseline(x[:10])
    black[1].fit_baseline(x[:10].clone())
    black[2].fit_baseline(x[10:] + 1)  # another data-wide lower bound
    assert same_metric(black[0], black[1]) and not same_metric(black[0], black[2])


class _Slow:
    """A panel metric that takes ``seconds`` per sample and records when each sample ended."""

    direction, uses_reference, uses_masks = "maximize", False, False

    def __init__(self, seconds: float):
        self.seconds, self.ended = seconds, []

    def evaluate(self, inputs, targets, attributions):
        time.sleep(self.seconds)
        self.ended.append(time.perf_counter())
        return attributions.flatten(1).sum(1)


def test_the_panel_stops_at_the_first_sample_boundary_after_its_budget():
    from tuner.evidence.panel._scoring import score_within_budget

    inputs, targets = torch.randn(20, 3), torch.zeros(20, dtype=torch.long)
    maps = {"a": torch.randn(20, 3), "b": torch.randn(20, 3)}
    metric = _Slow(0.05)
    began = time.perf_counter()
    scored = score_within_budget(inputs, targets, maps, [("slow", metric)], budget=0.2)
    assert 1 <= scored.n_samples < 20 and len(metric.ended) == scored.n_samples
    assert metric.ended[-1] - began >= 0.2  # it went on until the budget was spent ...
    assert scored.n_samples == 1 or metric.ended[-2] - began < 0.2  # ... and stopped at the first sample after it
    assert scored.scores["a"].shape == (1, scored.n_samples)
    torch.testing.assert_close(scored.scores["b"][0], maps["b"][: scored.n_samples].sum(1))  # the same samples
    everything = score_within_budget(inputs, targets, maps, [("slow", _Slow(0.0))], budget=60)
    assert everything.n_samples == 20


def test_a_smaller_budget_scores_fewer_samples_and_says_so(result):
    small = dataclasses.replace(result, panel_budget=1e-4, panel_min_seconds=0, _panel=None).panel_details()
    large = dataclasses.replace(result, panel_budget=10, panel_min_seconds=0, _panel=None).panel_details()
    n = len(result.holdout.inputs)
    assert small.n_samples < large.n_samples == n
    assert small.lines()[0].startswith(f"robustness panel: {small.n_samples} of {n} held-out samples")
    label = next(label for label in small.scores.columns if label.startswith("FaithfulnessCorrelation"))
    assert label == "FaithfulnessCorrelation (n_runs=10, 1 draw)"  # as many draws as the budget allows, at least one
    assert all(values.shape[-1] == small.n_samples for values in small.samples.values())
    if small.n_samples < 5:
        assert all(tau.text() == "too few samples for τ" for tau in small.tau.values())
        assert any("too few samples for τ" in line for line in small.lines())


def test_tau_and_its_interval():
    from tuner.evidence._statistics import kendall_tau_b, tau_with_ci

    generator = np.random.default_rng(0)
    for _ in range(20):
        a, b = generator.integers(0, 4, 7).astype(float), generator.integers(0, 4, 7).astype(float)
        expected = stats.kendalltau(a, b).statistic
        assert kendall_tau_b(a, b) == pytest.approx(expected, nan_ok=True)
    objective = generator.normal(size=(6, 60)) + np.arange(6)[:, None] * 0.3
    other = objective + generator.normal(size=(6, 60))
    wide, narrow = tau_with_ci(objective[:, :8], other[:, :8]), tau_with_ci(objective, other)
    assert narrow.ci_low <= narrow.value <= narrow.ci_high
    assert wide.ci_high - wide.ci_low > narrow.ci_high - narrow.ci_low  # fewer samples: a wider interval
    few = tau_with_ci(objective[:, :4], other[:, :4])
    assert few.value is None and few.text() == "too few samples for τ"


def test_the_panel_budget_follows_the_trials_and_its_floor(result):
    from tuner.evidence.panel._scoring import panel_seconds
    from tuner.search._study import trial_seconds

    assert panel_seconds(0.3, 60, 1000) == 300 and panel_seconds(0.3, 60, 10) == 60 and panel_seconds(0, 60, 10) == 0
    # a trial scored with others counts its own seconds (their durations overlap), one scored alone its duration
    trials = sum(t.user_attrs.get("seconds", t.duration.total_seconds()) for t in result.study.trials if t.duration)
    assert trial_seconds(result.study) == pytest.approx(trials) and trials > 0
    assert result.panel_budget_seconds() == max(60.0, 0.3 * trials)
    off = dataclasses.replace(result, panel_budget=0, _panel=None)
    assert not off.has_panel and off.panel().empty and off.panel_details() is None
