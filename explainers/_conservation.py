"""Conservation checks: with every bias zero, LRP's input relevance sums to the relevance put in at the output.

This is the test of every claim that a model is covered (docs/architecture.md). The model is prepared the way a
test must prepare it for the check to mean something: BatchNorm statistics calibrated on real inputs (so
activations are not degenerate), then every bias and BatchNorm shift set to zero, in float64.
"""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import nn


def conservation_model(model: nn.Module, inputs: torch.Tensor, *, calibration_passes: int = 3) -> nn.Module:
    """A float64 copy of ``model`` whose every bias and normalisation shift is zero, in eval mode.

    BatchNorm statistics are first calibrated by ``calibration_passes`` train-mode forward passes of ``inputs``
    (without gradients), so that the activations stay non-degenerate once the shifts are zeroed. The
    original model is not changed.
    """
    prepared = copy.deepcopy(model).double()
    batch_norms = [m for m in prepared.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if batch_norms:
        for batch_norm in batch_norms:
            batch_norm.reset_running_stats()
            batch_norm.momentum = None  # a cumulative average over the calibration passes
        prepared.train()
        with torch.no_grad():
            for _ in range(calibration_passes):
                prepared(inputs.double())
    for module in prepared.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
            module.running_mean.zero_()
        for name, parameter in module.named_parameters(recurse=False):
            if name == "bias" or name.endswith("_bias"):
                parameter.data.zero_()
    return prepared.eval()


def relevance_sums(relevance: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The total relevance of each sample, shape (B,): summed over every dimension but the first (and over
    the tensors of a tuple)."""
    parts = relevance if isinstance(relevance, tuple) else (relevance,)
    # a tensor: Python's sum starts from 0, and there is always at least one part
    return cast(torch.Tensor, sum(part.flatten(1).sum(1) for part in parts))


def token_relevance(relevance: torch.Tensor, *, batch_first: bool = True) -> torch.Tensor:
    """Sum a relevance at the embedding output over the embedding dimension: one score per token, shape (B, L).

    ``relevance`` is (B, L, E), or (L, B, E) with ``batch_first=False``.
    """
    if relevance.dim() != 3:
        raise ValueError(f"expected an embedding-output relevance of 3 dimensions, got shape {tuple(relevance.shape)}")
    scores = relevance.sum(-1)
    return scores if batch_first else scores.transpose(0, 1)
