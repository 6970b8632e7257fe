"""Relevance mass accuracy: the share of positive relevance that falls inside the mask (Arras et al. 2022)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._registry import register_metric
from ._metric import LocalisationMetric


@register_metric("relevance_mass")
class RelevanceMassAccuracy(LocalisationMetric):
    """Share of the positive relevance inside the evidence mask. Higher is better.

    With R_p the relevance of position p (summed over channels / embedding dims) and M the mask's positions,

        mass = sum_{p in M} max(R_p, 0) / sum_p max(R_p, 0),

    in [0, 1]; 0 for a map with no positive relevance. Negative relevance is clipped, so evidence against the
    class outside the mask is not penalised (on non-negative maps this is Quantus's RelevanceMassAccuracy).
    Model-free.

    Reference: L. Arras, A. Osman, W. Samek, "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of
    neural network explanations", Information Fusion 81, 2022.
    """

    def score(self, relevance: Tensor, inside: Tensor) -> Tensor:
        """Positive relevance inside the mask over all positive relevance, (B,)."""
        positive = relevance.clamp_min(0)
        total = positive.sum(1)
        within = (positive * inside).sum(1)
        mass = within / total.clamp_min(1e-300)
        return torch.where(total > 0, mass, torch.zeros_like(mass))
