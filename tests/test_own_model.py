"""Bring your own model: torchvision names, import paths, state dicts, overrides and offline weights.

The command-line tests run real processes; the network is cut by pointing the HTTP(S) proxy at a closed port
and torchvision's cache (TORCH_HOME) at a temporary folder.
"""

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

import studies
from studies import ModelImportError, Preprocessing, WeightsError, model_preset
from tuner.cli import command_line
from tuner.evidence._provenance import model_fingerprint

TINY_NET = """
from torch import nn


def build(num_classes=10):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, num_classes)
    )
"""


def offline_env(torch_home: Path) -> dict:
    closed = "http://127.0.0.1:9"  # nothing listens there: every download fails at once
    env = {**os.environ, "TORCH_HOME": str(torch_home), "OMP_NUM_THREADS": "1"}
    env.update({"https_proxy": closed, "HTTPS_PROXY": closed, "http_proxy": closed, "HTTP_PROXY": closed})
    env.pop("no_proxy", None), env.pop("NO_PROXY", None)
    return env


def cli(*args, cwd, env=None, timeout=600):
    return subprocess.run(
        command_line("run", *args),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or offline_env(Path(cwd) / "torch-home"),
        timeout=timeout,
    )


def quick(tmp_path, *more):
    """The flags after ``run`` of a one-trial run on two samples into ``s.db``, with ``more``."""
    options = dict(n_trials=1, n_samples=2, explainers="epsilon_plus", no_report=True, no_progress=True)
    return command_line("run", *more, storage=f"sqlite:///{tmp_path / 's.db'}", **options)[4:]


def one_error_line(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def only_study(tmp_path) -> optuna.study.StudySummary:
    [summary] = optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 's.db'}", include_best_trial=False)
    return summary


@pytest.fixture
def tiny_package(tmp_path):
    """A package `mynets` in the run's folder whose `nets.build(num_classes=10)` is a small CNN."""
    (tmp_path / "mynets").mkdir()
    (tmp_path / "mynets" / "__init__.py").write_text("")
    (tmp_path / "mynets" / "nets.py").write_text(TINY_NET)
    sys.path.insert(0, str(tmp_path))
    from mynets import nets

    yield nets
    sys.path.remove(str(tmp_path))
    for name in [n for n in sys.modules if n.startswith("mynets")]:
        del sys.modules[name]


# --- the command line ---------------------------------------------------------------------------------


@pytest.mark.slow  # a subprocess of the command line
def test_a_torchvision_name_uses_default_weights_from_the_cache_offline(tmp_path):
    weights = torchvision.models.SqueezeNet1_1_Weights.DEFAULT
    source = torchvision.models.squeezenet1_1(weights=None).eval()
    cached = tmp_path / "torch-home" / "hub" / "checkpoints" / Path(weights.url).name
    cached.parent.mkdir(parents=True)
    torch.save(source.state_dict(), cached)
    done = cli("--model", "squeezenet1_1", "--weights", "DEFAULT", *quick(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = only_study(tmp_path)
    assert summary.study_name == "squeezenet1_1@IMAGENET1K_V1-abpc-LRPEpsilonPlus"
    assert summary.user_attrs["model"] == model_fingerprint(source)  # the cached file's weights, not others
    assert summary.user_attrs["targets"] == "prediction"  # the sample photographs have no labels


@pytest.mark.slow  # a subprocess of the command line
def test_offline_default_weights_fail_in_one_line_and_create_nothing(tmp_path):
    torch_home = tmp_path / "torch-home"
    torch_home.mkdir()
    done = cli("--model", "mobilenet_v3_small", "--weights", "DEFAULT", *quick(tmp_path, "--out", "out"), cwd=tmp_path)
    line = one_error_line(done)
    assert "cannot fetch" in line and str(torch_home / "hub" / "checkpoints") in line and "--weights PATH" in line
    assert list(torch_home.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["torch-home"]


@pytest.mark.slow  # a subprocess of the command line
def test_an_import_path_with_a_state_dict_and_a_labelled_folder(tmp_path, tiny_package):
    source = tiny_package.build(num_classes=3).eval()  # another head than the callable's default 10
    torch.save(source.state_dict(), tmp_path / "tiny.pt")
    folder = tmp_path / "images"
    for label, colour in enumerate(["red", "green", "blue"]):
        (folder / f"class{label}").mkdir(parents=True)
        for index in range(2):
            Image.new("RGB", (40, 30), colour).save(folder / f"class{label}" / f"{index}.png")
    done = cli(
        "--model",
        "mynets.nets:build",
        "--weights",
        "tiny.pt",
        "--data",
        str(folder),
        "--input-size",
        "32",
        *quick(tmp_path),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = only_study(tmp_path)
    assert summary.user_attrs["model"] == model_fingerprint(source)
    assert summary.user_attrs["targets"] == "label"  # the folder has class subfolders
    assert summary.study_name.startswith("mynets.nets:build@tiny-") and "32px" in summary.study_name


@pytest.mark.slow  # a subprocess of the command line
def test_a_file_path_callable_explains_predictions_when_asked(tmp_path):
    (tmp_path / "net.py").write_text(TINY_NET)
    done = cli(
        "--model",
        f"{tmp_path / 'net.py'}:build",
        "--weights",
        "none",
        "--input-size",
        "32",
        "--targets",
        "prediction",
        *quick(tmp_path),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert only_study(tmp_path).user_attrs["targets"] == "prediction"


@pytest.mark.slow  # a subprocess of the command line
def test_a_state_dict_of_another_architecture_is_one_line(tmp_path, tiny_package):
    torch.save(torchvision.models.squeezenet1_1().state_dict(), tmp_path / "other.pt")
    done = cli("--model", "mynets.nets:build", "--weights", "other.pt", *quick(tmp_path, "--out", "out"), cwd=tmp_path)
    line = one_error_line(done)
    assert "other.pt" in line and "missing (0.bias, 0.weight" in line and "unexpected (classifier.1.bias" in line
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "out").exists()


@pytest.mark.slow  # a subprocess of the command line
@pytest.mark.parametrize(
    "model, message",
    [
        ("mynets.nets:resnet", "mynets.nets has no 'resnet'; callables defined there: build"),
        ("mynets.absent:build", "no module named 'mynets.absent'"),
        ("{tmp}/absent.py:build", "absent.py not found"),
    ],
)
def test_a_missing_callable_or_module_is_one_line(model, message, tmp_path, tiny_package):
    done = cli("--model", model.replace("{tmp}", str(tmp_path)), *quick(tmp_path), cwd=tmp_path)
    assert message in one_error_line(done)
    assert not (tmp_path / "s.db").exists()


@pytest.mark.slow  # a subprocess of the command line
def test_targets_label_without_labels_is_one_line(tmp_path):
    (tmp_path / "net.py").write_text(TINY_NET)
    done = cli("--model", "net.py:build", "--weights", "none", "--targets", "label", *quick(tmp_path), cwd=tmp_path)
    assert "--targets label needs labelled data" in one_error_line(done)
    assert not (tmp_path / "s.db").exists()


# --- model_preset ---------------------------------------------------------------------------------------


def test_default_names_tell_models_and_weights_apart(tmp_path):
    first, second = tmp_path / "a" / "best.pt", tmp_path / "b" / "best.pt"
    for path, seed in ((first, 0), (second, 1)):
        path.parent.mkdir()
        torch.manual_seed(seed)
        torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    names = [model_preset("squeezenet1_1", weights=w).name for w in (None, "DEFAULT", "none", str(first), str(second))]
    assert names[0] == names[1] == "squeezenet1_1@IMAGENET1K_V1"
    assert len(set(names[1:])) == 4  # random weights and two checkpoints called best.pt all differ
    assert model_preset("digits").name == "digits"  # a preset's own weights keep its plain name
    assert model_preset("squeezenet1_1", weights="none", input_size=160).name != names[2]


def test_preprocessing_and_bounds_come_from_the_chosen_weights():
    v1, v2 = (model_preset("resnet50", weights=w, num_classes=1000) for w in ("IMAGENET1K_V1", "IMAGENET1K_V2"))
    assert "resize 256" in v1.description and "resize 232" in v2.description  # each weights' own transforms()
    expected = Preprocessing.from_weights(torchvision.models.ResNet50_Weights.IMAGENET1K_V2)
    assert (expected.resize, expected.crop) == (232, 224)
    inputs, _ = v2.load_data(n_samples=2)
    assert inputs.shape == (2, 3, 224, 224)
    assert (inputs >= v2.low - 1e-5).all() and (inputs <= v2.high + 1e-5).all()


def test_overrides_set_size_normalisation_and_bounds():
    preset = model_preset("squeezenet1_1", weights="none", input_size=64, mean=[0.5, 0.5, 0.5], std=[0.25])
    inputs, _ = preset.load_data(n_samples=2)
    assert inputs.shape == (2, 3, 64, 64)  # the one-value std is repeated for the mean's three channels
    assert torch.allclose(preset.low, torch.full((1, 3, 1, 1), -2.0))
    assert torch.allclose(preset.high, torch.full((1, 3, 1, 1), 2.0))
    gray = Preprocessing().override(input_size=28, mean=[0.5], std=[0.5])
    assert gray.mode == "L" and gray.channels == 1
    with pytest.raises(ValueError, match="mean has 2 values but the std 3"):
        Preprocessing().override(mean=[0.5, 0.5])


def test_a_head_of_another_size_is_read_from_the_state_dict(tmp_path):
    path = tmp_path / "three.pt"
    torch.save(torchvision.models.squeezenet1_1(num_classes=3).state_dict(), path)
    model = model_preset("squeezenet1_1", weights=str(path)).load_model()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    with pytest.raises(WeightsError, match="have 1000 classes, not 3"):
        model_preset("squeezenet1_1", weights="DEFAULT", num_classes=3).load_model()
    with pytest.raises(WeightsError, match="IMAGENET1K_V1, none, or a state-dict path"):
        model_preset("squeezenet1_1", weights="IMAGENET1K_V7")


def test_an_import_path_builds_with_num_classes_and_refuses_what_it_cannot_take(tmp_path, tiny_package):
    model = model_preset("mynets.nets:build", num_classes=4).load_model()
    assert isinstance(model, nn.Sequential) and model(torch.randn(1, 3, 32, 32)).shape == (1, 4)
    again = model_preset("mynets.nets:build", num_classes=4).load_model()
    assert model_fingerprint(again) == model_fingerprint(model)  # the same command builds the same model
    (tmp_path / "fixed.py").write_text("from torch import nn\ndef build():\n    return nn.Linear(2, 2)\n")
    with pytest.raises(ModelImportError, match="takes no num_classes"):
        model_preset(f"{tmp_path / 'fixed.py'}:build", num_classes=4)
    with pytest.raises(WeightsError, match="DEFAULT names torchvision's weights"):
        model_preset("mynets.nets:build", weights="DEFAULT").load_model()
    with pytest.raises(studies.PresetError, match="not to the 'digits' preset"):
        model_preset("digits", input_size=32)
