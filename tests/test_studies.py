"""Tests of the presets package `studies`: registry, weights, data, bounds and the cached digits model."""

from __future__ import annotations

import importlib.metadata
import sys
import threading
from importlib.metadata import EntryPoint
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

import studies
from studies import (
    DEFAULT_PRESET,
    DataError,
    Preset,
    PresetError,
    UnknownPresetError,
    WeightsError,
    WeightsUnavailableError,
    _registry,
    available_presets,
    bounds_from_normalization,
    get_preset,
    register_preset,
)
from studies.presets import _digits_cache, _digits_model

BUILTIN = ("digits", "resnet50", "resnet18", "vgg16")
TORCHVISION = ("resnet50", "resnet18", "vgg16")


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message and "\n" not in message
    return message


def _tiny_preset(name: str = "tiny") -> Preset:
    low, high = bounds_from_normalization([0.5], [0.25])
    return Preset(
        name=name,
        description="a linear model on 2x2 images",
        model=lambda weights, device: nn.Sequential(nn.Flatten(), nn.Linear(4, 2)),
        data=lambda data_dir, n: (torch.zeros(n or 3, 1, 2, 2), None),
        low=low,
        high=high,
        defaults={"n_trials": 5},
    )


def _write_png(path: Path, size=(40, 30), mode="RGB", value=None, seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    if value is None:
        pixels = np.random.RandomState(seed).randint(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    else:
        pixels = np.full((size[1], size[0], channels), value, dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)
    return path


@pytest.fixture
def registry_snapshot(monkeypatch):
    """Presets registered in the test go to a copy of the registry, which is dropped afterwards."""
    monkeypatch.setattr(_registry, "_PRESETS", _registry._PRESETS.copy())


# --- registry -------------------------------------------------------------------------------------


def test_builtin_presets_are_listed_and_found():
    assert set(BUILTIN) <= set(available_presets())
    assert DEFAULT_PRESET == "digits"
    for name in BUILTIN:
        preset = get_preset(name)
        assert preset.name == name and preset.description
        assert {"n_samples", "n_trials", "batch_size"} <= set(preset.defaults)
        assert all(isinstance(preset.defaults[k], int) and preset.defaults[k] >= 1 for k in preset.defaults)
        assert preset.canonizers() == [] and preset.canonizers() is not preset.canonizers()


def test_unknown_preset_lists_known_names():
    with pytest.raises(UnknownPresetError) as exc:
        get_preset("resnet-9000")
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, PresetError)
    message = _one_line(exc)
    assert "resnet-9000" in message
    assert all(name in message for name in BUILTIN)


def test_register_preset_adds_and_refuses_duplicates(registry_snapshot):
    tiny = register_preset(_tiny_preset())
    assert get_preset("tiny") is tiny and "tiny" in available_presets()
    assert tiny.defaults["n_trials"] == 5 and tiny.defaults["batch_size"] >= 1  # merged with study defaults
    with pytest.raises(ValueError, match="already registered"):
        register_preset(_tiny_preset())
    with pytest.raises(ValueError, match="already registered"):
        register_preset(_tiny_preset("digits"))
    other = register_preset(_tiny_preset(), overwrite=True)
    assert get_preset("tiny") is other is not tiny
    model = other.load_model(weights="none")
    inputs, labels = other.load_data(n_samples=2)
    assert not model.training and model(inputs).shape == (2, 2) and labels is None
    with pytest.raises(TypeError):
        register_preset(object())


def test_entry_points_are_discovered_lazily(tmp_path, monkeypatch, registry_snapshot):
    module = "lrp_tuner_test_plugin"
    (tmp_path / f"{module}.py").write_text(
        "import torch\n"
        "from studies import Preset, bounds_from_normalization\n"
        "low, high = bounds_from_normalization([0.0], [1.0])\n"
        "def make(name='made'):\n"
        "    return Preset(name=name, description='plugin', model=lambda w, d: torch.nn.Identity(),\n"
        "                  data=lambda d, n: (torch.zeros(1, 1, 2, 2), None), low=low, high=high)\n"
        "OBJECT = make('object')\n"
        "def broken():\n"
        "    raise RuntimeError('plugin is broken')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    group = studies.ENTRY_POINT_GROUP
    found = [
        EntryPoint(name="ep-object", value=f"{module}:OBJECT", group=group),
        EntryPoint(name="ep-factory", value=f"{module}:make", group=group),
        EntryPoint(name="ep-broken", value=f"{module}:broken", group=group),
    ]
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group=None: found if group == studies.ENTRY_POINT_GROUP else []
    )
    sys.modules.pop(module, None)
    assert {"ep-object", "ep-factory", "ep-broken"} <= set(available_presets())
    assert module not in sys.modules  # listing does not import plugins
    assert get_preset("ep-object").description == "plugin"
    assert get_preset("ep-factory").name == "made"
    with pytest.raises(PresetError, match="plugin is broken") as exc:
        get_preset("ep-broken")
    _one_line(exc)


# --- weights --------------------------------------------------------------------------------------


def test_weights_none_gives_random_eval_models():
    resnet = get_preset("resnet18").load_model(weights="none")
    assert isinstance(resnet, torchvision.models.ResNet) and not resnet.training
    digits = get_preset("digits").load_model(weights="none", device=torch.device("cpu"))
    assert isinstance(digits, torchvision.models.ResNet) and not digits.training
    assert all(
        isinstance(block, torchvision.models.resnet.BasicBlock)
        for block in (digits.layer1[0], digits.layer2[0], digits.layer3[0], digits.layer4[0])
    )


def test_weights_path_round_trip(tmp_path):
    source = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)
    loaded = get_preset("resnet18").load_model(weights=str(path))
    assert not loaded.training
    inputs = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(inputs), source(inputs))
        # a fresh random model differs, so the equality above is due to the file
        assert not torch.equal(get_preset("resnet18").load_model(weights="none")(inputs), source(inputs))


def test_weights_checkpoint_with_state_dict_key_and_dataparallel_prefix(tmp_path):
    source = _digits_model.build_digits_model().eval()
    path = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}, path)
    loaded = get_preset("digits").load_model(weights=str(path))
    inputs = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(inputs), source(inputs))


def test_corrupt_weights_file_raises_weights_error(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"this is not a torch file" * 10)
    with pytest.raises(WeightsError) as exc:
        get_preset("resnet18").load_model(weights=str(path))
    assert str(path) in _one_line(exc)


def test_non_state_dict_file_raises_weights_error(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="state dict"):
        get_preset("digits").load_model(weights=str(path))


def test_missing_weights_file_raises_weights_error(tmp_path):
    with pytest.raises(WeightsError) as exc:
        get_preset("resnet18").load_model(weights=str(tmp_path / "absent.pt"))
    assert "absent.pt" in _one_line(exc) and "--weights none" in str(exc.value)


def test_mismatched_weights_file_names_file_and_key_counts(tmp_path):
    path = tmp_path / "digits.pt"
    torch.save(_digits_model.build_digits_model().state_dict(), path)
    with pytest.raises(WeightsError) as exc:
        get_preset("resnet18").load_model(weights=str(path))
    message = _one_line(exc)
    assert str(path) in message and "missing" in message and "unexpected" in message
    # resnet18 and the digits ResNet share key names but not shapes
    assert "mismatched" in message and not message.startswith("0 ")


@pytest.mark.parametrize("failure", [URLError("no network"), OSError("unreachable"), RuntimeError("bad hash")])
def test_offline_default_weights_raise_weights_unavailable(tmp_path, monkeypatch, failure):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fail)
    for weights in (None, "DEFAULT"):
        with pytest.raises(WeightsUnavailableError) as exc:
            get_preset("resnet50").load_model(weights=weights)
        message = _one_line(exc)
        assert "--weights PATH" in message and "--weights none" in message
        assert isinstance(exc.value, ValueError)


def test_default_weights_come_from_torch_hub_cache_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise URLError("offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsUnavailableError):
        get_preset("resnet18").load_model(weights="DEFAULT")
    source = torchvision.models.resnet18(weights=None).eval()
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    cached = tmp_path / "hub" / "checkpoints" / Path(url).name
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save(source.state_dict(), cached)
    loaded = get_preset("resnet18").load_model(weights="DEFAULT")
    inputs = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(inputs), source(inputs))


# --- data -----------------------------------------------------------------------------------------


def test_default_photographs_are_preprocessed_without_labels():
    preset = get_preset("resnet18")
    inputs, labels = preset.load_data()
    assert labels is None and inputs.shape[1:] == (3, 224, 224) and len(inputs) >= 6
    two, _ = preset.load_data(n_samples=2)
    assert torch.equal(two, inputs[:2])
    with pytest.raises(ValueError):
        preset.load_data(n_samples=0)


def test_flat_image_folder_has_no_labels(tmp_path):
    _write_png(tmp_path / "a.png", mode="RGB", seed=1)
    _write_png(tmp_path / "b.png", size=(20, 50), mode="L", seed=2)
    _write_png(tmp_path / "c.png", mode="RGBA", seed=3)
    (tmp_path / "notes.txt").write_text("not an image")
    inputs, labels = get_preset("resnet50").load_data(tmp_path)
    assert labels is None and inputs.shape == (3, 3, 224, 224)
    one, _ = get_preset("resnet50").load_data(str(tmp_path), n_samples=1)
    assert len(one) == 1 and any(torch.equal(one[0], row) for row in inputs)


def test_class_folders_give_sorted_labels(tmp_path):
    _write_png(tmp_path / "zebra" / "1.png", seed=1)
    _write_png(tmp_path / "zebra" / "2.png", seed=2)
    _write_png(tmp_path / "ant" / "1.png", seed=3)
    inputs, labels = get_preset("resnet18").load_data(tmp_path)
    assert inputs.shape == (3, 3, 224, 224)
    assert labels.dtype == torch.long and labels.tolist() == [0, 1, 1]
    digits, digit_labels = get_preset("digits").load_data(tmp_path, n_samples=2)
    assert digits.shape == (2, 1, 16, 16) and digit_labels.tolist() == [0, 1]


@pytest.mark.parametrize("preset", ["digits", "resnet18"])
def test_missing_and_empty_folders_raise_data_error(tmp_path, preset):
    with pytest.raises(DataError) as exc:
        get_preset(preset).load_data(tmp_path / "absent")
    assert "absent" in _one_line(exc)
    with pytest.raises(DataError) as exc:
        get_preset(preset).load_data(tmp_path)
    assert str(tmp_path) in _one_line(exc)
    (tmp_path / "empty_class").mkdir()
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError):
        get_preset(preset).load_data(tmp_path)


def test_unreadable_image_raises_data_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as exc:
        get_preset("resnet18").load_data(tmp_path)
    assert "broken.png" in _one_line(exc)


# --- bounds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_bounds_follow_normalisation(name):
    preset = get_preset(name)
    transform = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    mean = torch.tensor(transform.mean).reshape(1, 3, 1, 1)
    std = torch.tensor(transform.std).reshape(1, 3, 1, 1)
    assert preset.low.shape == preset.high.shape == (1, 3, 1, 1)
    assert torch.allclose(preset.low, (0 - mean) / std) and torch.allclose(preset.high, (1 - mean) / std)


def test_digits_bounds_follow_normalisation():
    preset = get_preset("digits")
    mean, std = _digits_model.RECIPE["mean"], _digits_model.RECIPE["std"]
    assert preset.low.shape == preset.high.shape == (1, 1, 1, 1)
    assert torch.allclose(preset.low, torch.tensor((0 - mean) / std))
    assert torch.allclose(preset.high, torch.tensor((1 - mean) / std))
    inputs, _ = preset.load_data()
    assert (inputs >= preset.low - 1e-6).all() and (inputs <= preset.high + 1e-6).all()
    # the bounds are attained: blank pixels sit at low, full ink at high
    assert torch.isclose(inputs.min(), preset.low.min()) and torch.isclose(inputs.max(), preset.high.max())


@pytest.mark.parametrize("name", ["resnet18", "digits"])
def test_black_and_white_images_map_to_low_and_high(tmp_path, name):
    _write_png(tmp_path / "0_black.png", value=0)
    _write_png(tmp_path / "1_white.png", value=255)
    _write_png(tmp_path / "2_noise.png", seed=4)
    preset = get_preset(name)
    inputs, _ = preset.load_data(tmp_path)
    assert torch.allclose(inputs[0], preset.low[0].expand_as(inputs[0]), atol=1e-5)
    assert torch.allclose(inputs[1], preset.high[0].expand_as(inputs[1]), atol=1e-5)
    assert (inputs >= preset.low - 1e-5).all() and (inputs <= preset.high + 1e-5).all()


def test_sample_photographs_lie_within_bounds():
    preset = get_preset("resnet50")
    inputs, _ = preset.load_data()
    assert (inputs >= preset.low - 1e-5).all() and (inputs <= preset.high + 1e-5).all()
    assert (inputs < preset.low + 0.5).any() and (inputs > preset.high - 0.5).any()  # not a degenerate range


def test_bounds_from_normalization_rejects_bad_input():
    with pytest.raises(ValueError):
        bounds_from_normalization([0.5, 0.5], [0.5])
    with pytest.raises(ValueError):
        bounds_from_normalization([0.5], [0.0])


# --- the embedded digits model and its cache ------------------------------------------------------


def test_digits_model_reaches_95_percent_on_held_out_digits(trained_digits):
    model, report, cache = trained_digits
    assert report["trained"] and report["path"].parent == cache and report["path"].is_file()
    assert _digits_model.RECIPE_HASH in report["path"].name
    preset = get_preset("digits")
    inputs, labels = preset.load_data()
    assert len(inputs) == int(1797 * _digits_model.RECIPE["test_fraction"])
    loaded = preset.load_model()
    with torch.no_grad():
        accuracy = (loaded(inputs).argmax(dim=1) == labels).float().mean().item()
    assert accuracy >= 0.95
    assert accuracy == pytest.approx(report["accuracy"])
    assert report["train_seconds"] > 0
    assert not list(cache.glob("*.tmp"))  # written atomically, no temp left behind


def test_digits_data_is_the_held_out_split():
    x_train, _, x_test, y_test = _digits_model.digits_split()
    assert len(x_train) + len(x_test) == 1797
    inputs, labels = get_preset("digits").load_data(n_samples=10)
    assert torch.equal(inputs, x_test[:10]) and torch.equal(labels, y_test[:10])


def test_held_out_digits_are_cached_and_a_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("LRP_TUNER_CACHE", str(tmp_path))
    _, _, x_test, y_test = _digits_model.digits_split()
    first = get_preset("digits").load_data(n_samples=5)
    cached = list(tmp_path.glob("digits-held-out-*.pt"))
    assert len(cached) == 1 and _digits_model.RECIPE_HASH in cached[0].name

    def no_sklearn():
        raise AssertionError("scikit-learn's digits were read although the cache is valid")

    monkeypatch.setattr(_digits_cache, "digits_split", no_sklearn)
    second = get_preset("digits").load_data(n_samples=5)
    for loaded in (first, second):
        assert torch.equal(loaded[0], x_test[:5]) and torch.equal(loaded[1], y_test[:5])
    monkeypatch.undo()
    monkeypatch.setenv("LRP_TUNER_CACHE", str(tmp_path))
    cached[0].write_bytes(b"\x00garbage")
    rebuilt = get_preset("digits").load_data(n_samples=5)
    assert torch.equal(rebuilt[0], x_test[:5]) and torch.equal(rebuilt[1], y_test[:5])
    assert torch.equal(torch.load(cached[0], weights_only=True)["labels"], y_test)


def test_second_load_uses_cache_without_training(trained_digits, monkeypatch):
    model, report, _ = trained_digits
    mtime = report["path"].stat().st_mtime_ns

    def no_training():
        raise AssertionError("retrained although the cache is valid")

    monkeypatch.setattr(_digits_cache, "train_digits_model", no_training)
    cached = get_preset("digits").load_model()
    inputs, _ = get_preset("digits").load_data(n_samples=8)
    with torch.no_grad():
        assert torch.equal(cached(inputs), model(inputs))
    assert report["path"].stat().st_mtime_ns == mtime


def test_corrupt_cache_is_retrained_and_replaced(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LRP_TUNER_CACHE", str(tmp_path))
    path = _digits_cache.cache_path()
    path.write_bytes(b"\x00garbage")
    calls = _counting_fake_training(monkeypatch)
    first = get_preset("digits").load_model()
    assert len(calls) == 1 and "retraining" in capsys.readouterr().err
    stored = torch.load(path, map_location="cpu", weights_only=True)
    assert set(stored["state_dict"]) == set(first.state_dict())
    second = get_preset("digits").load_model()
    assert len(calls) == 1
    inputs = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(first(inputs), second(inputs))


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("LRP_TUNER_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert studies.cache_dir() == tmp_path / "xdg" / "lrp-tuner"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert studies.cache_dir() == tmp_path / "home" / ".cache" / "lrp-tuner"
    monkeypatch.setenv("LRP_TUNER_CACHE", str(tmp_path / "mine"))
    assert studies.cache_dir() == tmp_path / "mine"
    assert _digits_cache.cache_path().parent == tmp_path / "mine"


def test_zennit_resnet_canonizer_applies_to_digits_model(trained_digits):
    from zennit.torchvision import ResNetCanonizer

    model = get_preset("digits").load_model()
    inputs, _ = get_preset("digits").load_data(n_samples=16)
    with torch.no_grad():
        before = model(inputs)
        handles = [handle for canonizer in [ResNetCanonizer()] for handle in canonizer.apply(model)]
        assert len(handles) >= 1
        assert any(hasattr(block, "canonizer_sum") for block in model.modules())
        after = model(inputs)
        for handle in handles:
            handle.remove()
    assert torch.allclose(before, after, rtol=1e-3, atol=1e-3)


def _counting_fake_training(monkeypatch) -> list:
    calls = []

    def fake_training():
        calls.append(1)
        return _digits_model.build_digits_model().eval(), {"accuracy": 0.5, "train_seconds": 0.01}

    monkeypatch.setattr(_digits_cache, "train_digits_model", fake_training)
    return calls


def test_a_process_waiting_for_the_training_lock_reuses_the_result(tmp_path, monkeypatch):
    monkeypatch.setenv("LRP_TUNER_CACHE", str(tmp_path))
    calls = _counting_fake_training(monkeypatch)
    results = []
    waiter = threading.Thread(target=lambda: results.append(_digits_cache.cached_digits_model()))
    with _digits_cache._training_lock(_digits_cache.cache_path()):
        waiter.start()
        waiter.join(timeout=0.5)
        assert waiter.is_alive() and not results  # blocked while another holder trains
        trained, _ = _digits_cache.train_digits_model()  # the fake training patched in above
        _digits_cache.save_atomically(
            {"state_dict": trained.state_dict(), "accuracy": 0.5, "train_seconds": 0.01}, _digits_cache.cache_path()
        )
    waiter.join(timeout=30)
    assert results and results[0][1]["trained"] is False and len(calls) == 1
    inputs = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(results[0][0](inputs), trained(inputs))


def test_unwritable_cache_folder_still_gives_a_model(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LRP_TUNER_CACHE", str(blocker / "cache"))
    calls = _counting_fake_training(monkeypatch)
    model = get_preset("digits").load_model()
    assert isinstance(model, torchvision.models.ResNet) and len(calls) == 1
    assert "LRP_TUNER_CACHE" in capsys.readouterr().err


def test_save_atomically_leaves_no_temp_file_on_failure(tmp_path):
    target = tmp_path / "out.pt"
    with pytest.raises(Exception):
        _digits_cache.save_atomically({"bad": lambda: None}, target)  # lambdas cannot be pickled
    assert not target.exists() and not list(tmp_path.iterdir())


def test_a_sample_of_class_folders_is_not_only_the_first_class(tmp_path):
    for name in ("ant", "bee", "cat"):
        for index in range(4):
            _write_png(tmp_path / name / f"{index}.png", seed=index)
    _, labels = get_preset("resnet18").load_data(tmp_path, n_samples=6)
    assert len(labels) == 6 and len(set(labels.tolist())) > 1
