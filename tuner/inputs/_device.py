"""Which device a study runs on."""

from __future__ import annotations

import torch
from torch import nn

from metrics.perturbation import model_device


def resolve_device(device: str | torch.device | None, model: nn.Module | None = None) -> torch.device:
    """The one place that decides a study's device. None: the model's (its first parameter's or buffer's,
    :func:`metrics.perturbation.model_device`); "auto": CUDA where available; else that device, if it exists."""
    if device in (None, "auto"):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device("cpu") if model is None else model_device(model)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use device cpu or auto")
    return device
