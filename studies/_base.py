"""The `Preset` value: a model, its weights, its data and its input bounds, under a name."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ._errors import DataError

ModelLoader = Callable[[str | None, torch.device], nn.Module]
# (inputs, labels or None) or (inputs, labels, masks); masks: where the evidence is, bool (N, H, W), when the
# data knows it.
Data = tuple[Tensor, Tensor | None] | tuple[Tensor, Tensor | None, Tensor]
DataLoader = Callable[[Path | None, int | None], Data]

STUDY_DEFAULTS = {"n_samples": 16, "n_trials": 20, "batch_size": 16}


def bounds_from_normalization(mean: Sequence[float], std: Sequence[float]) -> tuple[Tensor, Tensor]:
    """Return (low, high) of shape (1, C, 1, 1): where pixels 0 and 1 land after `(x - mean) / std`."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
    if mean_t.shape != std_t.shape:
        raise ValueError(f"mean has {mean_t.numel()} channels but std has {std_t.numel()}")
    if (std_t <= 0).any():
        raise ValueError("std must be positive in every channel")
    return (0.0 - mean_t) / std_t, (1.0 - mean_t) / std_t


def _no_canonizers() -> list:
    return []


@dataclass(frozen=True, eq=False)
class Preset:
    """A named model with its weights, preprocessing, default data, input bounds and study defaults.

    ``model(weights, device)`` builds the model: ``weights`` is ``"DEFAULT"``, ``"none"`` (random
    weights), a path to a local state dict, or None for the preset's default. ``data(data_dir,
    n_samples)`` returns preprocessed inputs and labels (None when the data has none), and a third tensor,
    masks: where the evidence is, bool (N, H, W), when the data knows it; ``data_dir`` None means the preset's
    own data. ``low``/``high`` (shape (1, C, 1, 1)) bound a valid input after preprocessing, per channel (see
    :func:`bounds_from_normalization`). ``canonizer_factory`` returns fresh extra zennit canonizers; ResNet/VGG
    canonizers are chosen by the explainers.
    ``metric_kwargs`` are objective settings this preset needs beyond the study's defaults (the baseline's default
    is :func:`metrics.perturbation.study_baseline`'s); the command line's ``--baseline`` and ``--metric-kwargs``
    override them.
    """

    name: str
    description: str
    model: ModelLoader
    data: DataLoader
    low: Tensor
    high: Tensor
    defaults: dict = field(default_factory=dict)
    canonizer_factory: Callable[[], list] = _no_canonizers
    metric_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a preset needs a non-empty string name")
        object.__setattr__(self, "defaults", {**STUDY_DEFAULTS, **self.defaults})

    def load_model(self, weights: str | None = None, device: str | torch.device = "cpu", seed: int = 0) -> nn.Module:
        """Build the model with the given weights, on `device`, in eval mode. Random weights (``"none"``) are
        drawn from ``seed`` (torch's generator is seeded while the model is built, and restored after), so the
        same command builds the same model and a resumed study scores the model it started with."""
        device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.model(weights, device)
        return model.to(device).eval()

    def load_data(
        self, data_dir: str | Path | None = None, n_samples: int | None = None, masks_dir: str | Path | None = None
    ) -> Data:
        """Return (inputs, labels or None), or (inputs, labels, masks) where the data knows where the evidence is
        (masks bool (N, H, W)): the preset's data or an image folder, preprocessed; ``masks_dir`` holds the folder's
        evidence masks (one PNG per image at its relative path), passed to a data loader that takes ``masks_dir``."""
        if n_samples is not None and n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        folder = None if data_dir is None else Path(data_dir)
        if masks_dir is None:
            return self.data(folder, n_samples)
        if "masks_dir" not in inspect.signature(self.data).parameters:
            raise DataError(f"preset {self.name!r} reads no evidence masks (its data loader takes no masks_dir)")
        return self.data(folder, n_samples, masks_dir=Path(masks_dir))  # type: ignore[call-arg]

    def canonizers(self) -> list:
        """Return fresh extra zennit canonizers for this model (usually none)."""
        return list(self.canonizer_factory())

    def __repr__(self) -> str:
        return f"Preset(name={self.name!r}, description={self.description!r})"
