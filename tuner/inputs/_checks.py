"""What ``tune()`` checks before any work and before any study exists (its options check themselves,
:mod:`tuner._options`): the model and the samples (shapes, finite inputs, integer targets within the model's classes).

Each check raises one clear ``TypeError`` or ``ValueError``; the command line prints it as one line (exit 2).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def check_model(model: Any) -> None:
    """``model`` is a torch module (not a name, a function or a class)."""
    if isinstance(model, type) or not isinstance(model, nn.Module):
        kind = model.__name__ if isinstance(model, type) else type(model).__name__
        raise TypeError(f"model must be a torch.nn.Module instance, got {kind}")


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


def check_masks(masks: Any, inputs: torch.Tensor) -> torch.Tensor:
    """Evidence masks as bool (N, *feature positions): one per sample, shaped like its input's positions (an image's
    (H, W)), each with at least one true position (:func:`metrics.localisation.position_masks` says what is wrong)."""
    from metrics._base import layout_of
    from metrics.localisation import position_masks

    return position_masks(torch.as_tensor(masks), inputs).reshape(len(inputs), *layout_of(inputs).positions)


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
