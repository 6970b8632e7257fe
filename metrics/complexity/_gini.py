"""Sparseness: the Gini index of the absolute attribution (Chalasani et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._base import Metric, check_inputs, layout_of, position_relevance
from .._registry import register_metric


@register_metric("sparseness")
class Sparseness(Metric):
    """Gini index of the absolute relevance per feature position. Higher (sparser) is better.

    With a_(1) <= ... <= a_(n) the sorted absolute relevances of the n positions (summed over
    channels / embedding dims first),

        G(a) = sum_{k=1..n} (2k - n - 1) a_(k) / (n sum_k a_(k)),

    0 for a uniform map, (n - 1) / n when one position holds all relevance, 0 for an all-zero map.
    Model-free.

    Reference: P. Chalasani, J. Chen, A. R. Chowdhury, X. Wu, S. Jha, "Concise explanations of
    neural networks using adversarial training", ICML 2020.
    """

    direction = "maximize"
    requires_model = False

    def __init__(self) -> None:
        super().__init__(None)

    def evaluate(self, inputs: Tensor, targets: Tensor | None, attributions: Tensor) -> Tensor:
        """Gini index per sample, (B,); ``targets`` is only checked (may be None)."""
        check_inputs(inputs, targets, attributions)
        a = position_relevance(attributions, layout_of(inputs)).abs().double().sort(dim=1).values
        n = a.shape[1]
        weights = 2 * torch.arange(1, n + 1, dtype=a.dtype, device=a.device) - n - 1
        total = a.sum(1)
        gini = (a * weights).sum(1) / (n * total.clamp_min(1e-300))
        return torch.where(total > 0, gini, torch.zeros_like(gini)).float()
