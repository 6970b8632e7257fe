"""Tests of the evidence preset: digits pasted on noise canvases, the evidence box known as a mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import studies
from studies import get_preset
from studies.presets import _evidence, _evidence_model

RECIPE = _evidence_model.RECIPE


@pytest.fixture(scope="module")
def digits():
    return _evidence_model.digit_images()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder for this test (LRP_TUNER_CACHE), as tests/conftest.py's trained_digits does."""
    monkeypatch.setenv("LRP_TUNER_CACHE", str(tmp_path))
    return tmp_path


def _pixels(inputs: torch.Tensor) -> torch.Tensor:
    return inputs * RECIPE["std"] + RECIPE["mean"]


def test_canvases_are_deterministic_for_a_seed_and_differ_across_seeds(digits):
    images, labels = digits
    first = _evidence_model.make_canvases(images, labels, 32, seed=3)
    again = _evidence_model.make_canvases(images, labels, 32, seed=3)
    other = _evidence_model.make_canvases(images, labels, 32, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0]) and not torch.equal(first[2], other[2])
    inputs, labels_out, masks = first
    assert inputs.shape == (32, 1, 32, 32) and inputs.dtype == torch.float32
    assert labels_out.shape == (32,) and labels_out.dtype == torch.long
    assert masks.shape == (32, 32, 32) and masks.dtype == torch.bool
    pixels = _pixels(inputs)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_each_mask_is_the_pasted_box_and_the_rest_is_noise_only(digits):
    images, _ = digits
    n, side, canvas = 64, RECIPE["digit"], RECIPE["canvas"]
    full = torch.ones(1, 1, 8, 8)  # a known digit: full ink everywhere, 1 after the bilinear upscaling
    blank = torch.zeros(1, 1, 8, 8)  # no ink: the canvas is the noise alone
    label = torch.tensor([7])
    inked, labels, masks = _evidence_model.make_canvases(full, label, n, seed=11)
    noise, _, noise_masks = _evidence_model.make_canvases(blank, label, n, seed=11)
    assert torch.equal(masks, noise_masks) and (labels == 7).all()
    inked, noise = _pixels(inked)[:, 0], _pixels(noise)[:, 0]
    for index in range(n):
        rows, cols = torch.nonzero(masks[index], as_tuple=True)
        top, left = int(rows.min()), int(cols.min())
        box = torch.zeros(canvas, canvas, dtype=torch.bool)
        box[top : top + side, left : left + side] = True
        assert torch.equal(masks[index], box)  # exactly one 16x16 box
        assert torch.allclose(inked[index][box], torch.ones(side * side), atol=1e-5)  # the digit inside
        assert torch.equal(inked[index][~box], noise[index][~box])  # outside: the same noise, untouched
    assert noise.min() >= -1e-5 and noise.max() <= RECIPE["noise"] + 1e-5 and noise.std() > 0.05
    # every place is possible: the boxes' corners spread over the canvas
    corners = {tuple(torch.nonzero(mask)[0].tolist()) for mask in masks}
    assert len(corners) > n // 2


def test_the_digit_is_pasted_by_maximum_with_the_noise(digits):
    images, labels = digits
    inputs, _, masks = _evidence_model.make_canvases(images, labels, 16, seed=5)
    noise, _, _ = _evidence_model.make_canvases(torch.zeros_like(images), labels, 16, seed=5)
    pixels, noise = _pixels(inputs), _pixels(noise)
    assert (pixels >= noise - 1e-5).all()  # never darker than the noise it covers
    assert torch.equal(pixels[:, 0][~masks], noise[:, 0][~masks])


def test_held_out_canvases_use_no_training_digit_image(digits, monkeypatch):
    images, labels = digits
    train, test = _evidence_model.split_indices(len(labels))
    assert len(set(train.tolist()) & set(test.tolist())) == 0 and len(train) + len(test) == len(labels)
    assert len(test) == int(len(labels) * RECIPE["test_fraction"])
    seen = []
    make = _evidence_model.make_canvases

    def recording(pool, pool_labels, n, seed):
        seen.append(pool)
        return make(pool, pool_labels, n, seed)

    monkeypatch.setattr(_evidence_model, "make_canvases", recording)
    inputs, held_labels, masks = _evidence_model.held_out_canvases()
    assert len(seen) == 1 and torch.equal(seen[0], images[test])  # drawn only from the held-out images
    training = {images[i].numpy().tobytes() for i in train.tolist()}
    overlap = [i for i in test.tolist() if images[i].numpy().tobytes() in training]
    assert overlap == []  # no held-out image equals a training one, pixel for pixel
    assert inputs.shape == (RECIPE["held_out"], 1, 32, 32) and held_labels.shape == (RECIPE["held_out"],)
    # the split does not depend on the training seed
    assert torch.equal(_evidence_model.split_indices(len(labels))[1], test)


def test_preset_loads_by_name_with_masks_aligned_with_inputs(cache):
    preset = get_preset("evidence")
    assert "evidence" in studies.available_presets()
    assert preset.defaults["n_samples"] == 64 and preset.defaults["n_trials"] == 60
    inputs, labels, masks = preset.load_data(n_samples=10)
    assert inputs.shape == (10, 1, 32, 32) and labels.shape == (10,) and masks.shape == (10, 32, 32)
    assert masks.dtype == torch.bool and (masks.sum(dim=(1, 2)) == 256).all()
    assert (inputs >= preset.low - 1e-5).all() and (inputs <= preset.high + 1e-5).all()
    # the box holds the digit's ink: the brightest pixel of each canvas lies in its mask (ink reaches 1, noise 0.4)
    brightest = inputs.flatten(1).argmax(dim=1)
    assert masks.flatten(1)[torch.arange(10), brightest].all()
    # cached: a second load reads the file, and gives the same tensors
    assert len(list(cache.glob("evidence-held-out-*.pt"))) == 1
    again = preset.load_data(n_samples=10)
    assert all(torch.equal(a, b) for a, b in zip((inputs, labels, masks), again, strict=True))
    model = preset.load_model(weights="none")
    assert isinstance(model, torchvision.models.ResNet) and model(inputs).shape == (10, 10)


def test_bounds_follow_normalisation():
    preset = get_preset("evidence")
    assert torch.allclose(preset.low, torch.tensor((0 - RECIPE["mean"]) / RECIPE["std"]))
    assert torch.allclose(preset.high, torch.tensor((1 - RECIPE["mean"]) / RECIPE["std"]))


def test_an_image_folder_is_read_at_32x32(tmp_path):
    for index, value in enumerate((0, 255)):
        Image.fromarray(np.full((20, 30), value, dtype=np.uint8), "L").save(tmp_path / f"{index}.png")
    preset = get_preset("evidence")
    inputs, labels = preset.load_data(tmp_path)
    assert inputs.shape == (2, 1, 32, 32) and labels is None
    assert torch.allclose(inputs[0], preset.low[0].expand_as(inputs[0]), atol=1e-5)
    assert torch.allclose(inputs[1], preset.high[0].expand_as(inputs[1]), atol=1e-5)


def test_weights_from_a_path_load(tmp_path):
    source = _evidence_model.build_evidence_model().eval()
    torch.save(source.state_dict(), tmp_path / "evidence.pt")
    loaded = get_preset("evidence").load_model(weights=str(tmp_path / "evidence.pt"))
    inputs = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(inputs), source(inputs))


@pytest.mark.slow
def test_trained_model_reaches_95_percent_on_held_out_canvases(cache):
    model, report = _evidence.cached_evidence_model()
    print(f"evidence training: {report['train_seconds']:.1f} s, held-out accuracy {report['accuracy']:.4f}")
    assert report["trained"] and report["path"].parent == cache and _evidence_model.RECIPE_HASH in report["path"].name
    inputs, labels, _ = get_preset("evidence").load_data()
    loaded = get_preset("evidence").load_model()
    with torch.no_grad():
        accuracy = (loaded(inputs).argmax(dim=1) == labels).float().mean().item()
    assert accuracy >= 0.95 and accuracy == pytest.approx(report["accuracy"])
    assert _evidence.cached_evidence_model()[1]["trained"] is False  # read from the cache the second time
