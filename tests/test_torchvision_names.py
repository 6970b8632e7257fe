"""--model takes any torchvision classification architecture, and --weights none builds the same model every time."""

from __future__ import annotations

import subprocess

import pytest
import torch
import torchvision

import studies
from explainers import LRPEpsilonGammaBox, conservation_model, relevance_sums
from tuner.cli import command_line


def test_every_torchvision_classifier_is_a_preset_with_bounds_from_its_weights():
    names = torchvision.models.list_models(module=torchvision.models)
    assert len(names) > 70
    for name in names:
        preset = studies.get_preset(name)
        assert preset.name == name
        transform = torchvision.models.get_model_weights(name).DEFAULT.transforms()
        mean, std = torch.tensor(transform.mean), torch.tensor(transform.std)
        # black and white pixels after the weights' own normalisation
        torch.testing.assert_close(preset.low.flatten(), (0 - mean) / std, msg=name)
        torch.testing.assert_close(preset.high.flatten(), (1 - mean) / std, msg=name)


def test_an_unknown_name_lists_the_presets_and_mentions_torchvision():
    with pytest.raises(studies.UnknownPresetError, match="every classification architecture of torchvision"):
        studies.get_preset("efficientnet_b99")


def test_random_weights_are_the_same_model_every_time_and_not_zero_where_torchvision_starts_at_zero():
    preset = studies.get_preset("mobilenet_v3_small")
    first, second = preset.load_model("none"), preset.load_model("none")
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    vit = studies.get_preset("vit_b_32").load_model("none")
    assert vit.heads.head.weight.abs().sum() > 0 and vit.class_token.abs().sum() > 0


def test_a_random_non_preset_architecture_is_explained_with_conserved_relevance():
    """The path of ``--model mnasnet0_5 --weights none``: the preset's model and data, explained by the default
    variant, relevance conserved once the biases are zeroed."""
    preset = studies.get_preset("mnasnet0_5")
    model = preset.load_model("none")
    images, labels = preset.load_data(n_samples=2)
    assert labels is None and images.shape[1:] == (3, 224, 224)
    small = torch.nn.functional.interpolate(images, size=64)
    prepared = conservation_model(model, small)
    targets = prepared(small.double()).argmax(1)
    explainer = LRPEpsilonGammaBox(prepared, low=preset.low, high=preset.high, epsilon=1e-12, stabilizer=1e-12)
    sums = relevance_sums(explainer.attribute(small.double(), targets))
    torch.testing.assert_close(sums, torch.ones_like(sums), rtol=0, atol=1e-6)


@pytest.mark.slow  # a subprocess of the command line
def test_the_command_line_takes_a_torchvision_name(tmp_path):
    """A real process: ``python -m tuner run --model squeezenet1_1 --weights none`` completes its trials."""
    storage = f"sqlite:///{tmp_path / 'names.db'}"
    command = command_line(
        "run",
        "--no-report",
        model="squeezenet1_1",
        weights="none",
        n_trials=1,
        n_samples=2,
        explainers="epsilon_gamma_box",
        storage=storage,
        out=tmp_path / "out",
    )
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    import optuna

    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 1
