"""Value checks of the explainers: finite parameters, finite relevance, and parameters as JSON values."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn


class NonFiniteAttributionError(ValueError):
    """The attributions hold NaN or Inf: the configuration is numerically unstable for this model."""


def jsonable(value: Any) -> Any:
    """A JSON-serialisable stand-in for a parameter: numbers and strings as they are, tensors as numbers or
    flat lists, value objects as dicts, modules and callables by name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if torch.is_tensor(value):
        return value.item() if value.numel() == 1 else value.flatten().tolist()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, nn.Module):
        return type(value).__name__
    return getattr(value, "__qualname__", None) or type(value).__name__


def check_finite_parameters(explainer: Any) -> None:
    """Refuse NaN or infinite numbers among the explainer's parameters (``epsilon=inf`` is no configuration)."""
    for name, value in explainer.parameters().items():
        numbers = value if torch.is_tensor(value) else torch.tensor(value) if _is_number(value) else None
        if numbers is not None and numbers.is_floating_point() and not bool(torch.isfinite(numbers).all()):
            raise ValueError(f"{type(explainer).__name__}: {name} must be finite, got {jsonable(value)!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_finite(relevance: tuple[torch.Tensor, ...], explainer: Any) -> None:
    bad = sum(int((~torch.isfinite(r)).sum()) for r in relevance)
    if bad:
        total = sum(r.numel() for r in relevance)
        raise NonFiniteAttributionError(
            f"{explainer!r} produced {bad} NaN/Inf values out of {total}; "
            "the configuration is numerically unstable for this model (try a larger epsilon or stabilizer)"
        )
