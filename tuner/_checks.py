"""What ``tune()`` checks before any work and before any study exists: the model, every numeric argument, and
the samples (shapes, finite inputs, integer targets within the model's classes).

Each check raises one clear ``TypeError`` or ``ValueError``; the command line prints it as one line (exit 2).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def check_model(model: Any) -> None:
    """``model`` is a torch module (not a name, a function or a class)."""
    if isinstance(model, type) or not isinstance(model, nn.Module):
        kind = model.__name__ if isinstance(model, type) else type(model).__name__
        raise TypeError(f"model must be a torch.nn.Module instance, got {kind}")


def check_arguments(
    *,
    n_trials: Any,
    n_samples: Any,
    batch_size: Any,
    seed: Any,
    timeout: Any,
    n_heatmaps: Any,
    heartbeat_interval: Any,
    n_holdout: Any,
) -> None:
    """Every numeric argument of ``tune()`` is of its type and in its range."""
    _integer("n_trials", n_trials, minimum=1)
    _integer("batch_size", batch_size, minimum=1)
    _integer("seed", seed, minimum=None)
    _integer("n_heatmaps", n_heatmaps, minimum=0)
    if n_samples is not None:
        _integer("n_samples", n_samples, minimum=1)
    if n_holdout is not None:
        _integer("n_holdout", n_holdout, minimum=0)
    if heartbeat_interval is not None:
        _integer("heartbeat_interval", heartbeat_interval, minimum=1)
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds (or None), got {timeout!r}")


def _integer(name: str, value: Any, *, minimum: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def check_inputs(inputs: torch.Tensor) -> None:
    """The samples' inputs are all finite (a NaN input would fail every trial)."""
    if inputs.is_floating_point() or inputs.is_complex():
        bad = ~torch.isfinite(inputs).reshape(len(inputs), -1).all(1)
        if bad.any():
            rows = bad.nonzero().flatten().tolist()
            raise ValueError(
                f"data holds NaN or infinite inputs in {len(rows)} of the chosen samples "
                f"(positions {rows[:5]}{'...' if len(rows) > 5 else ''}); clean or drop them"
            )


def check_targets(targets: Any, n_inputs: int) -> torch.Tensor:
    """Targets as a long tensor of one integer class per sample; float targets are refused, never truncated."""
    targets = torch.as_tensor(targets)
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices, got dtype {targets.dtype}")
    if targets.ndim != 1 or len(targets) != n_inputs:
        shape = tuple(targets.shape)
        raise ValueError(f"targets must hold one class index per sample: shape ({n_inputs},), got {shape}")
    return targets.long()


def check_target_range(targets: torch.Tensor, n_classes: int | None) -> None:
    """Every target is a class of the model (0..n_classes-1)."""
    if n_classes is None or not len(targets):
        return
    bad = (targets < 0) | (targets >= n_classes)
    if bad.any():
        values = sorted(set(targets[bad].tolist()))
        raise ValueError(
            f"targets {values[:5]} are out of range for a model with {n_classes} classes (valid: 0..{n_classes - 1})"
        )
