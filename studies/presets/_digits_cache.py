"""The trained digits weights and held-out split, cached on disk by :mod:`studies.presets._cache` (locked,
atomic, once per recipe)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torchvision.models.resnet import ResNet

from ..loading._weights import cache_dir, save_atomically
from ._cache import cached_model, cached_tensors
from ._cache import training_lock as _training_lock
from ._digits_model import RECIPE, RECIPE_HASH, build_digits_model, digits_split, train_digits_model

__all__ = ["cache_path", "cached_digits_model", "held_out_digits", "save_atomically", "_training_lock"]


def cache_path() -> Path:
    """Return where the trained digits model is cached (the name holds the recipe's hash)."""
    return cache_dir() / f"digits-resnet-{RECIPE_HASH}.pt"


def cached_digits_model() -> tuple[ResNet, dict]:
    """Load the trained digits model from the cache, or train and cache it; the report says which."""
    return cached_model(cache_path(), build_digits_model, lambda: train_digits_model(), "digits")


def _valid(inputs: Tensor, labels: Tensor) -> bool:
    size = RECIPE["size"]
    return inputs.dtype == torch.float32 and inputs.shape[1:] == (1, size, size) and labels.shape == (len(inputs),)


def held_out_digits() -> tuple[Tensor, Tensor]:
    """Return the preprocessed held-out split, cached beside the model: every worker process of a study
    loads it, and reading the cache is cheaper than importing scikit-learn (about 0.9 s)."""
    path = cache_dir() / f"digits-held-out-{RECIPE_HASH}.pt"
    inputs, labels = cached_tensors(path, ("inputs", "labels"), lambda: digits_split()[2:], _valid)
    return inputs, labels.long()
