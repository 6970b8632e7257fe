"""The pointing game: whether the position of maximal relevance lies in the mask (Zhang et al. 2018)."""

from __future__ import annotations

from torch import Tensor

from .._registry import register_metric
from ._metric import LocalisationMetric


@register_metric("pointing_game")
class PointingGame(LocalisationMetric):
    """1 when the position of maximal relevance lies in the evidence mask, else 0. Higher is better.

    With R_p the relevance of position p (summed over channels / embedding dims) and M the mask's positions,

        hit = 1 if some p in argmax_p R_p lies in M, else 0.

    Ties: as in Quantus 0.6, when several positions share the maximum, one of them inside the mask is a hit; so a
    constant map (all zero, say) scores 1 with any non-empty mask. Model-free.

    Reference: J. Zhang, S. A. Bargal, Z. Lin, J. Brandt, X. Shen, S. Sclaroff, "Top-down neural attention by
    excitation backprop", International Journal of Computer Vision 126, 2018.
    """

    def score(self, relevance: Tensor, inside: Tensor) -> Tensor:
        """1.0 where a position of maximal relevance is in the mask, else 0.0, (B,)."""
        top = relevance == relevance.amax(1, keepdim=True)
        return (top & inside).any(1).double()
