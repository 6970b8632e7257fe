"""The embedded default preset: a small torchvision ResNet trained on scikit-learn's digits at first use.

The model and its training are in :mod:`studies.presets._digits_model`, the cached weights in
:mod:`studies.presets._digits_cache`.

The objective's baseline is the study's default for images (:func:`metrics.perturbation.study_baseline`): a
Gaussian blur, sigma 2 pixels (an eighth of the 16-pixel side). Not ``"zero"``: the digits are normalised, so 0
is grey (pixel 0.305), the reference point of Integrated Gradients with a zero reference and of gradient×input,
and AbPC with a zero baseline ranks them first because of it. The robustness panel re-scores under zero, min and
blur.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from .._base import Data, Preset, bounds_from_normalization
from ..loading._images import load_image_folder
from ..loading._masks import nearest_mask
from ._cache import embedded_model
from ._digits_cache import cached_digits_model, held_out_digits
from ._digits_model import RECIPE, build_digits_model, preprocess


def load_digits_model(weights: str | None, device: torch.device) -> nn.Module:
    """Return the digits ResNet: trained and cached (None/DEFAULT), random ("none"), or from a state dict PATH."""
    return embedded_model(weights, build_digits_model, cached_digits_model)


def _image_to_pixels(image: Image.Image) -> Tensor:
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    return preprocess(pixels[None, None])[0]


def load_digits_data(data_dir: Path | None, n_samples: int | None, masks_dir: Path | None = None) -> Data:
    """Return the held-out digits (never trained on) with labels, or a grayscale image folder, preprocessed (with its
    evidence masks from ``masks_dir``)."""
    if data_dir is not None:
        size = RECIPE["size"]
        with_masks = None if masks_dir is None else (masks_dir, nearest_mask((size, size)))
        return load_image_folder(data_dir, _image_to_pixels, n_samples, mode="L", masks=with_masks)
    inputs, labels = held_out_digits()
    return inputs[:n_samples], labels[:n_samples]


_LOW, _HIGH = bounds_from_normalization([RECIPE["mean"]], [RECIPE["std"]])

DIGITS = Preset(
    name="digits",
    description="small torchvision ResNet (BasicBlocks [1,1,1,1]) trained on scikit-learn's 8x8 digits at 16x16",
    model=load_digits_model,
    data=load_digits_data,
    low=_LOW,
    high=_HIGH,
    defaults={"n_samples": 64, "n_trials": 60, "batch_size": 16},
)
