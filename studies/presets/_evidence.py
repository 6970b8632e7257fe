"""The embedded evidence preset: scikit-learn's digits pasted on noise canvases, so where the evidence lies is known.

The canvases, the split and the training are in :mod:`studies.presets._evidence_model`; the weights and the
held-out canvases are cached by :mod:`studies.presets._cache`. The preset's own data is the fixed held-out set,
(inputs, labels, masks): masks are bool (N, 32, 32), True on the box the digit was pasted into.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torchvision.models.resnet import ResNet

from .._base import Data, Preset, bounds_from_normalization
from ..loading._images import load_image_folder
from ..loading._masks import nearest_mask
from ..loading._weights import cache_dir
from ._cache import cached_model, cached_tensors, embedded_model
from ._evidence_model import (
    RECIPE,
    RECIPE_HASH,
    build_evidence_model,
    held_out_canvases,
    normalise,
    train_evidence_model,
)


def cache_path() -> Path:
    """Return where the trained evidence model is cached (the name holds the recipe's hash)."""
    return cache_dir() / f"evidence-resnet-{RECIPE_HASH}.pt"


def cached_evidence_model() -> tuple[ResNet, dict]:
    """Load the trained evidence model from the cache, or train and cache it; the report says which."""
    return cached_model(cache_path(), build_evidence_model, lambda: train_evidence_model(), "evidence")


def _valid(inputs: Tensor, labels: Tensor, masks: Tensor) -> bool:
    size = RECIPE["canvas"]
    return (
        inputs.dtype == torch.float32
        and inputs.shape == (RECIPE["held_out"], 1, size, size)
        and labels.shape == (len(inputs),)
        and masks.dtype == torch.bool
        and masks.shape == (len(inputs), size, size)
    )


def held_out_evidence() -> tuple[Tensor, Tensor, Tensor]:
    """Return the held-out canvases (inputs, labels, masks), cached beside the model (no scikit-learn import)."""
    path = cache_dir() / f"evidence-held-out-{RECIPE_HASH}.pt"
    inputs, labels, masks = cached_tensors(path, ("inputs", "labels", "masks"), held_out_canvases, _valid)
    return inputs, labels.long(), masks


def load_evidence_model(weights: str | None, device: torch.device) -> nn.Module:
    """Return the evidence ResNet: trained and cached (None/DEFAULT), random ("none"), or from a state dict PATH."""
    return embedded_model(weights, build_evidence_model, cached_evidence_model)


def _image_to_pixels(image: Image.Image) -> Tensor:
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None, None]
    size = RECIPE["canvas"]
    return normalise(F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False))[0]


def load_evidence_data(data_dir: Path | None, n_samples: int | None, masks_dir: Path | None = None) -> Data:
    """Return the held-out canvases (inputs, labels, masks), or a grayscale image folder at 32x32 (inputs, labels
    or None, and its masks from ``masks_dir``)."""
    if data_dir is not None:
        size = RECIPE["canvas"]
        with_masks = None if masks_dir is None else (masks_dir, nearest_mask((size, size)))
        return load_image_folder(data_dir, _image_to_pixels, n_samples, mode="L", masks=with_masks)
    inputs, labels, masks = held_out_evidence()
    return inputs[:n_samples], labels[:n_samples], masks[:n_samples]


_LOW, _HIGH = bounds_from_normalization([RECIPE["mean"]], [RECIPE["std"]])

EVIDENCE = Preset(
    name="evidence",
    description="the digits ResNet trained on scikit-learn's digits pasted at random on 32x32 noise, "
    "with the evidence box known (masks)",
    model=load_evidence_model,
    data=load_evidence_data,
    low=_LOW,
    high=_HIGH,
    defaults={"n_samples": 64, "n_trials": 60, "batch_size": 16},
)
