"""Search spaces that matter: layer-group studies, inert parameters, several objectives, held-out scores.

Models: the embedded digits ResNet (one dense layer) and a small VGG-style CNN with a two-layer dense head,
both trained on scikit-learn's digits."""

import json
import subprocess

import pandas as pd
import pytest
import torch
import torchvision
from helpers import run_tune
from optuna_dashboard import get_note
from torch import nn

import studies
from explainers import LRPEpsilonGammaBox, LRPEpsilonPlus, LRPLayerwise, LRPUniformEpsilon
from tuner.cli import command_line
from tuner.search._inert import inert_tunables

FOUR = ("LRPUniformEpsilon", "LRPEpsilonGammaBox", "LRPEpsilonPlus", "LRPEpsilonAlpha2Beta1")


@pytest.fixture(scope="module")
def digits(trained_digits):
    """The digits ResNet, its held-out digits and its input bounds."""
    preset = studies.get_preset("digits")
    inputs, labels = preset.load_data(n_samples=64)
    return trained_digits[0], inputs, labels, {"low": preset.low, "high": preset.high}


@pytest.fixture(scope="module")
def vgg(digits):
    """A VGG-style CNN (two dense layers) trained on the same digits in a few seconds."""
    _, inputs, labels, _ = digits
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.nn.functional.interpolate(
        torch.tensor(data.images, dtype=torch.float32)[:, None] / 16, size=inputs.shape[-2:], mode="bilinear"
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        model = torchvision.models.VGG(features)
        model.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        model.classifier = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        targets = torch.tensor(data.target)
        for _ in range(60):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images[:1400]), targets[:1400]).backward()
            optimizer.step()
    model.eval()
    accuracy = (model(images[1400:]).argmax(1) == targets[1400:]).float().mean()
    assert accuracy > 0.9
    return model, images[1400:1464], targets[1400:1464]


def tune_on_eight(explainer_cls, model, x, y, **options):
    """``run_tune`` on eight of the samples ``x`` (labels ``y``) without a progress bar, as every study here."""
    return run_tune(explainer_cls, model, (x, y), n_samples=8, show_progress_bar=False, **options)


# -- inert parameters ------------------------------------------------------------------------------------
def test_epsilon_is_inert_on_a_single_dense_head_and_not_on_two(digits, vgg):
    resnet, x, y, bounds = digits
    assert set(inert_tunables(LRPEpsilonPlus(resnet), x[:4], y[:4])) == {"epsilon"}
    assert set(inert_tunables(LRPEpsilonGammaBox(resnet, **bounds), x[:4], y[:4])) == {"epsilon"}
    assert inert_tunables(LRPUniformEpsilon(resnet), x[:4], y[:4]) == {}  # epsilon on every layer matters
    model, vx, vy = vgg
    assert inert_tunables(LRPEpsilonPlus(model), vx[:4], vy[:4]) == {}


def test_a_variant_with_only_inert_tunables_is_evaluated_once(digits, tmp_path, caplog):
    resnet, x, y, _ = digits
    with caplog.at_level("WARNING", logger="tuner"):
        result = tune_on_eight(
            LRPEpsilonPlus, resnet, x, y, n_trials=10, storage=f"sqlite:///{tmp_path / 's.db'}", study_name="inert"
        )
    assert len(result.study.trials) == 1 and result.best_value == result.default_value
    assert "nothing to tune" in caplog.text and "LRPEpsilonPlus.epsilon" in caplog.text
    assert result.study.user_attrs["inert_parameters"]["LRPEpsilonPlus"].keys() == {"epsilon"}
    assert "epsilon" in get_note(result.study)  # the study note optuna-dashboard shows


def test_dropped_parameters_are_not_searched(digits):
    resnet, x, y, bounds = digits
    result = tune_on_eight(LRPEpsilonGammaBox, resnet, x, y, n_trials=5, explainer_kwargs=bounds)
    assert all(set(t.params) == {"gamma"} for t in result.study.trials)
    assert len({t.params["gamma"] for t in result.study.trials}) > 1


# -- layer groups ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_name", ["digits", "vgg"])
def test_layer_group_study_is_never_worse_than_the_four_variants(model_name, request):
    fixture = request.getfixturevalue(model_name)
    model, x, y = fixture[:3]
    bounds = fixture[3] if model_name == "digits" else {"low": 0.0, "high": 1.0}
    result = tune_on_eight(LRPLayerwise, model, x, y, n_trials=8, explainer_kwargs=bounds, pruner="none")
    labels = [t.user_attrs.get("initial_configuration") for t in result.study.trials[:5]]
    assert {label.split(" as ")[0] for label in labels if label} >= set(FOUR) - {"LRPEpsilonGammaBox"}
    variant_scores = {}
    for cls in (LRPUniformEpsilon, LRPEpsilonGammaBox, LRPEpsilonPlus):
        kwargs = bounds if cls is LRPEpsilonGammaBox else {}
        variant_scores[cls.__name__] = result.scores(cls(model, **kwargs)).mean().item()
    assert result.best_value >= max(variant_scores.values()) - 1e-6, variant_scores
    assert "convolutions" in result.summary().loc["LRPLayerwise", "configuration"]


# -- several objectives ----------------------------------------------------------------------------------
def test_two_objectives_give_a_pareto_front(digits):
    resnet, x, y, bounds = digits
    both = [LRPUniformEpsilon, LRPEpsilonGammaBox]
    result = tune_on_eight(both, resnet, x, y, metric=["abpc", "sparseness"], n_trials=10, explainer_kwargs=bounds)
    assert [d.name for d in result.study.directions] == ["MAXIMIZE", "MAXIMIZE"]
    front = result.pareto_front()
    assert list(front.columns[:2]) == ["AbPC", "Sparseness"] and len(front) >= 1
    values = front[["AbPC", "Sparseness"]].to_numpy()
    for i, a in enumerate(values):  # no configuration on the front dominates another
        assert not any((b >= a).all() and (b > a).any() for j, b in enumerate(values) if j != i)
    first = result.choose(index=0)
    assert type(first).__name__ == front.iloc[0]["explainer"]
    faithful = result.choose(weights=[1, 0])
    assert result.scores(faithful)[0].mean().item() == pytest.approx(front["AbPC"].max(), abs=1e-6)
    with pytest.raises(IndexError, match="Pareto front has"):
        result.choose(index=len(front))
    assert isinstance(result.best_value, tuple) and len(result.best_value) == 2


# -- held-out scores and importances ---------------------------------------------------------------------
def test_summary_reports_held_out_scores_on_other_samples(digits):
    resnet, x, y, bounds = digits
    result = tune_on_eight(LRPEpsilonGammaBox, resnet, x, y, n_trials=6, explainer_kwargs=bounds)
    tuned, held = result.objective.inputs, result.holdout.inputs
    assert len(held) == len(tuned) == 8
    assert not any(torch.equal(a, b) for a in tuned for b in held)  # disjoint
    summary = result.summary()
    row = summary.loc["LRPEpsilonGammaBox"]
    assert row["best (held-out)"] == pytest.approx(result.held_out_scores(result.best_explainer).mean().item())
    assert row["default (held-out)"] == pytest.approx(
        result.held_out_scores(LRPEpsilonGammaBox(resnet, **bounds)).mean().item()
    )
    assert row["default (held-out)"] != pytest.approx(row["default"])  # really other samples
    # epsilon is inert on this model (it only rescales the map), so it is held and not ranked
    assert "epsilon" in result.study.user_attrs["inert_parameters"]["LRPEpsilonGammaBox"]
    assert set(result.importances()["LRPEpsilonGammaBox"]) == {"gamma"}


@pytest.mark.slow  # a subprocess of the command line
def test_cli_objectives_write_the_front_and_held_out_columns(trained_digits, tmp_path):
    done = subprocess.run(
        command_line(
            "run",
            n_trials=6,
            n_samples=6,
            objectives="abpc,sparseness",
            explainers="layerwise",
            no_progress=True,
            storage=f"sqlite:///{tmp_path / 's.db'}",
            out=tmp_path / "out",
        ),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    front = pd.read_csv(tmp_path / "out" / "pareto.csv", index_col=0)
    assert {"AbPC", "Sparseness"} <= set(front.columns)
    table = pd.read_csv(tmp_path / "out" / "summary.csv", index_col=0)
    assert {"default (held-out)", "best (held-out)"} <= set(table.columns)
    assert "best rules per layer group" in done.stdout and "dense head" in done.stdout
    best = json.loads((tmp_path / "out" / "best.json").read_text())
    assert best["explainer"] == "LRPLayerwise" and len(best["value"]) == 2
