"""Relevance rank accuracy: the share of the K most relevant positions inside a mask of K positions (Arras et al.
2022)."""

from __future__ import annotations

from torch import Tensor

from .._registry import register_metric
from ._metric import LocalisationMetric


@register_metric("relevance_rank")
class RelevanceRankAccuracy(LocalisationMetric):
    """Share of the K highest-relevance positions that lie in the mask, K the mask's number of true positions.
    Higher is better.

    With R_p the relevance of position p (summed over channels / embedding dims, not clipped), M the mask's
    positions, K = |M| and P_K the K positions of highest relevance,

        rank = |P_K ∩ M| / K,

    in [0, 1]. Ties: where positions tie with the K-th highest relevance t, P_K is not unique; the positions above
    t all count, and the remaining K - |{R_p > t}| places are shared among the tied positions in proportion:

        rank = (|{p in M: R_p > t}| + (K - |{R_p > t}|) |{p in M: R_p = t}| / |{R_p = t}|) / K,

    the mean over all orders of the tied positions, so the score never depends on where the mask sits (a constant
    map scores K / n, chance). Without ties at t this is Quantus's RelevanceRankAccuracy. Model-free.

    Reference: L. Arras, A. Osman, W. Samek, "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of
    neural network explanations", Information Fusion 81, 2022.
    """

    def score(self, relevance: Tensor, inside: Tensor) -> Tensor:
        """The share of the top-K positions in the mask, ties at the K-th value shared in proportion, (B,)."""
        k = inside.sum(1)
        ordered = relevance.sort(dim=1, descending=True).values
        threshold = ordered.gather(1, (k - 1).unsqueeze(1))
        above = relevance > threshold
        tied = relevance == threshold
        places = (k - above.sum(1)).double()
        hits = (above & inside).sum(1) + places * (tied & inside).sum(1) / tied.sum(1)
        return hits / k
