"""MoRF: region perturbation, most relevant features first (AOPC)."""

from __future__ import annotations

from torch import Tensor

from .._registry import register_metric
from ._region import RegionPerturbation


@register_metric("morf")
class MoRF(RegionPerturbation):
    """Area over the MoRF perturbation curve (AOPC, Samek et al. 2017). Higher is better.

    Features are removed most relevant first in S = ``n_steps`` equal steps (see
    :mod:`metrics.perturbation._region`); with p the target's softmax probability and x^(k) the input after k
    steps,

        MoRF(x) = 1/S * sum_{k=1..S} [ p(x) - p(x^(k)) ].

    A faithful attribution removes the evidence first, so p drops fast and the score is high.
    Makes ceil((S + 1) B / batch_size) forward passes, ceil(S B / batch_size) with ``reference``.

    Reference: W. Samek et al., "Evaluating the visualization of what a deep neural network has
    learned", IEEE TNNLS 28(11), 2017.
    """

    direction = "maximize"
    most_relevant_first = True

    def evaluate(
        self, inputs: Tensor, targets: Tensor, attributions: Tensor, *, reference: Tensor | None = None
    ) -> Tensor:
        """MoRF AOPC per sample, (B,); ``reference``: p(x) from :meth:`reference`, if already known."""
        return self._aopc(inputs, targets, attributions, reference)
