"""Complexity: the entropy of the fractional contributions (Bhatt et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._base import Metric, check_inputs, layout_of, position_relevance
from .._registry import register_metric


@register_metric("complexity")
class Complexity(Metric):
    """Entropy of the fractional absolute relevance per feature position. Lower is better.

    With a_i the absolute relevance of position i (summed over channels / embedding dims first) and
    P_i = a_i / sum_j a_j,

        C(a) = - sum_i P_i ln P_i     (0 ln 0 = 0),

    0 when one position holds all relevance, ln n for a uniform map; an all-zero map counts as
    uniform (ln n), the least informative explanation. Model-free.

    Reference: U. Bhatt, A. Weller, J. M. F. Moura, "Evaluating and aggregating feature-based
    model explanations", IJCAI 2020.
    """

    direction = "minimize"
    requires_model = False

    def __init__(self) -> None:
        super().__init__(None)

    def evaluate(self, inputs: Tensor, targets: Tensor | None, attributions: Tensor) -> Tensor:
        """Entropy per sample, (B,); ``targets`` is only checked (may be None)."""
        check_inputs(inputs, targets, attributions)
        a = position_relevance(attributions, layout_of(inputs)).abs().double()
        a = torch.where(a.sum(1, keepdim=True) > 0, a, torch.ones_like(a))
        p = a / a.sum(1, keepdim=True)
        return -torch.special.xlogy(p, p).sum(1).float()
