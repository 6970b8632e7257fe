"""What a trial's evidence needs besides its parameters: the model's fingerprint and library versions."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from typing import Any

import torch
from torch import nn

LIBRARIES = ("lrp-tuner", "torch", "torchvision", "zennit", "optuna", "numpy", "quantus", "captum")


def model_fingerprint(model: nn.Module) -> dict[str, Any]:
    """Class, parameter count and a SHA-256 of the weights (state dict in key order)."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        if torch.is_tensor(value):
            digest.update(_bytes(value))
    return {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "parameters": sum(p.numel() for p in model.parameters()),
        "sha256": digest.hexdigest(),
    }


def data_fingerprint(inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
    """Count, shape and a SHA-256 of the samples a study tunes on (inputs and targets): a resumed study must
    score the same samples, or its trials are not comparable."""
    digest = hashlib.sha256()
    for tensor in (inputs, targets):
        digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(_bytes(tensor))
    return {"n_samples": len(inputs), "shape": list(inputs.shape[1:]), "sha256": digest.hexdigest()}


def _bytes(value: torch.Tensor) -> bytes:
    if not value.numel():
        return b""
    return value.detach().to("cpu").reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
