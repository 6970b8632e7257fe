"""Which device a study runs on."""

from __future__ import annotations

import torch
from torch import nn


def resolve_device(device: str | torch.device | None, model: nn.Module | None = None) -> torch.device:
    """None: the model's device; "auto": CUDA where available; else that device, if it exists."""
    if device in (None, "auto"):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        parameter = None if model is None else next(model.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use device cpu or auto")
    return device
