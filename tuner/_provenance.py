"""What a trial's evidence needs besides its parameters: the model's fingerprint and library versions."""
import hashlib
import platform
from importlib import metadata
from typing import Any, Dict

import torch
from torch import nn

LIBRARIES = ("lrp-tuner", "torch", "torchvision", "zennit", "optuna", "numpy", "quantus", "captum")


def model_fingerprint(model: nn.Module) -> Dict[str, Any]:
    """Class, parameter count and a SHA-256 of the weights (state dict in key order)."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        if torch.is_tensor(value):
            digest.update(value.detach().to("cpu").reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
                          if value.numel() else b"")
    return {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "parameters": sum(p.numel() for p in model.parameters()),
        "sha256": digest.hexdigest(),
    }


def library_versions() -> Dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def jsonable(value: Any) -> Any:
    """A JSON-serialisable stand-in for an explainer parameter."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if torch.is_tensor(value):
        return value.item() if value.numel() == 1 else value.flatten().tolist()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, nn.Module):
        return type(value).__name__
    return getattr(value, "__qualname__", None) or type(value).__name__
